"""The Franka backend end to end against franky-sim, a libfranka-protocol server (MuJoCo FR3)
started by the test on a free loopback address. Nothing is mocked: franky talks the real
protocol; only the robot is simulated.

franky leaves native threads behind in the process that used it, which slow every later test in
that process; so the scenarios (functions named scenario_*) run in a pytest child process of their
own, started by the one test collected here, without realtime scheduling (NO_REALTIME: libfranka's
SCHED_FIFO threads would otherwise starve franky-sim on a small machine).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from tether.config import RigConfig
from tether.robot_ws import arm_franka
from tether.robot_ws.drivers import make_arm
from tether.robot_ws.franky_server import NO_REALTIME, SimServer, free_loopback_address, sim_rig
from tether.robot_ws.interfaces import ArmBackend, DeviceError
from tether.safety import translation_target

@pytest.fixture
def sim() -> Iterator[SimServer]:
    server = SimServer(free_loopback_address())
    server.start()
    yield server
    server.stop()


def wait_until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def follow(arm: ArmBackend, rig: RigConfig, deltas: list[np.ndarray], settle_ticks: int = 15) -> tuple[np.ndarray, float]:
    """Drive the arm like the arm node: a speed-limited, box-clipped target per tick.
    Returns the final target and the largest tracking error seen while moving."""
    start = arm.state().tcp_pose
    target, quat = start[:3].copy(), start[3:]
    worst = 0.0
    for delta in deltas + [np.zeros(3)] * settle_ticks:
        measured = arm.state().tcp_pose[:3]
        worst = max(worst, float(np.linalg.norm(measured - target)))
        target = translation_target(measured, target, delta, rig.arm.workspace, rig.arm.max_linear_speed, rig.control_dt)
        arm.move_toward(target, quat)
        time.sleep(rig.control_dt)
    return target, worst


def scenario_franka_homes_follows_grips_and_recovers_after_the_server_restarts(sim: SimServer):
    rig = sim_rig(sim.address)
    with make_arm(rig) as arm:
        arm.home()
        state = arm.state()
        np.testing.assert_allclose(state.joint_positions, rig.arm.home_joints, atol=0.02)
        assert state.tcp_pose.shape == (7,) and state.wrench.shape == (6,)
        assert abs(np.linalg.norm(state.tcp_pose[3:]) - 1.0) < 1e-6

        step = rig.arm.action_scale[0]
        deltas = [np.array([step, 0, 0])] * 6 + [np.array([0, step, 0])] * 6 + [np.array([0, 0, -step])] * 6
        target, worst = follow(arm, rig, deltas)
        final = arm.state().tcp_pose
        assert np.linalg.norm(final[:3] - target) < 0.005  # settled on the last target
        max_step = rig.arm.max_linear_speed * rig.control_dt
        assert worst < 3 * max_step  # the target never leads far (the arm node's lead limit) and the arm keeps up
        moved = final[:3] - state.tcp_pose[:3]  # the lead limit may shorten the path when the sim runs slow
        assert moved[0] > 3 * step and moved[1] > 3 * step and moved[2] < -3 * step

        arm.set_gripper(+1)  # returns at once; the hand closes in the background
        wait_until(lambda: arm.state().gripper < 0.05)
        arm.set_gripper(-1)
        wait_until(lambda: arm.state().gripper > 0.95)

        sim.stop()  # the robot goes away mid-run
        with pytest.raises(DeviceError, match=rf"^franka {sim.address}: "):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                arm.move_toward(target, final[3:])
                arm.state()
                time.sleep(rig.control_dt)
        sim.start()
        arm.recover()  # reconnects and clears errors
        arm.home()
        np.testing.assert_allclose(arm.state().joint_positions, rig.arm.home_joints, atol=0.02)
        target, _ = follow(arm, rig, [np.array([0, 0, -step])] * 4)
        assert np.linalg.norm(arm.state().tcp_pose[:3] - target) < 0.005
        arm.set_gripper(+1)  # the gripper reconnected too
        wait_until(lambda: arm.state().gripper < 0.05)


def scenario_franka_motion_left_running_in_franky_is_a_device_error_and_recovers(sim: SimServer, monkeypatch):
    """franky raises InvalidMotionTypeException (not a franky.Exception) when a motion of another type
    still runs in it; that must reach the arm node as a DeviceError it recovers from, not end its executor."""
    import franky

    rig = sim_rig(sim.address)
    with make_arm(rig) as arm:
        arm.home()
        here = arm.state().tcp_pose
        arm._robot.move(franky.JointMotion(list(rig.arm.home_joints)), asynchronous=True)  # untracked by the backend
        with pytest.raises(DeviceError, match=rf"^franka {sim.address}: cannot move: "):
            arm.move_toward(here[:3], here[3:])
        arm.recover()
        arm.home()
        target, _ = follow(arm, rig, [np.array([0, 0, -rig.arm.action_scale[0]])] * 4)
        assert np.linalg.norm(arm.state().tcp_pose[:3] - target) < 0.005

        # An e-stop during a home: the abort event stops the joint motion where it is.
        abort, outcome = threading.Event(), []
        away = arm.state().joint_positions
        homing = threading.Thread(target=lambda: outcome.append(_raised(lambda: arm.home(abort))))
        homing.start()
        time.sleep(0.2)
        abort.set()
        homing.join(timeout=10)
        assert not homing.is_alive() and "homing interrupted" in str(outcome[0])
        time.sleep(1.0)  # franky ends the joint motion with a short deceleration
        stopped = arm.state().joint_positions
        time.sleep(0.3)
        assert np.abs(arm.state().joint_positions - stopped).max() < 0.002  # it stands still
        assert np.abs(stopped - np.asarray(rig.arm.home_joints)).max() > 0.01  # short of home
        assert np.abs(stopped - away).max() > 0.005  # after having started towards it

        # A wall-clock jump: the driver's timing is monotonic, its stamps follow the new wall time at once.
        class JumpedClock:
            monotonic, sleep = staticmethod(time.monotonic), staticmethod(time.sleep)

            @staticmethod
            def time() -> float:
                return time.time() + 3600.0

        monkeypatch.setattr(arm_franka, "time", JumpedClock)
        for _ in range(5):
            assert abs(arm.state().stamp - JumpedClock.time()) < 1.0
            time.sleep(rig.control_dt)


def _raised(call: Callable[[], None]) -> Exception | None:
    try:
        call()
    except DeviceError as error:
        return error
    return None


def scenario_unreachable_franka_is_one_line():
    rig = sim_rig(free_loopback_address())  # nothing listens there
    with pytest.raises(DeviceError, match=rf"^franka {rig.arm.host}: cannot connect: [^\n]+$"):
        make_arm(rig).connect()


def scenario_deploy_runs_a_reach_checkpoint_on_the_franka_through_the_graph(sim: SimServer, tmp_path):
    """`tether deploy` on the Franka rig pointed at franky-sim: arm node + eval actor + recorder + the
    reach node, which draws a target per episode and judges success from the measured TCP."""
    from tether import spaces
    from tether.cli.deploy import run_deploy
    from tether.datasets.store import EpisodeStore
    from tether.policies.sac import SACAgent, SACConfig

    rig = sim_rig(sim.address)
    # Short: when the shared machine is loaded, franky-sim falls behind real time and the actor
    # (rightly) refuses its stale states, so each step can take seconds.
    rig = rig.model_copy(update={"cameras": [], "task": rig.task.model_copy(update={"name": "reach", "episode_length": 4})})
    space = spaces.observation_space([], extra_state={"target_pos": 3}, gripper=False)
    sac = SACConfig(hidden_dims=(32, 32), grasp_critic=False)  # reach's action has no gripper to grasp with
    checkpoint = SACAgent(space, spaces.action_space(rig).shape[0], sac).save(tmp_path / "policy")
    summary = run_deploy(checkpoint, rig, 1, tmp_path / "deploy.zarr", timeout_s=300, progress=False)

    assert summary["episodes"] == 1 and summary["outcomes"][0] in ("success", "timeout")
    assert summary["tracking_mean_mm"] is not None and len(summary["final_target_distance_m"]) == 1
    store = EpisodeStore(tmp_path / "deploy.zarr")
    assert store.n_episodes == 1 and store.episodes[0].source == "policy"
    targets = store.load("state/target_pos")
    low, high = np.array(rig.arm.workspace.low), np.array(rig.arm.workspace.high)
    assert np.all((targets > low) & (targets < high))
    episode = store.episode(0)
    np.testing.assert_array_equal(episode.action, episode.policy_action)  # the policy alone acted
    assert episode.action.shape[1] == 3  # reach: no gripper part, no gripper/cmd to the Franka
    tcp = store.load(spaces.TCP_POSE)[:, :3]
    assert np.all((tcp >= low - 0.01) & (tcp <= high + 0.01))  # the safety layer kept the arm in its box


def test_franka_scenarios_in_their_own_process():
    result = subprocess.run(
        [*NO_REALTIME, sys.executable, "-m", "pytest", __file__, "-p", "no:cacheprovider", "-o", "python_functions=scenario_*"],
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "4 passed" in result.stdout
