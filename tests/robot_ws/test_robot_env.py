"""RobotEnv over a real twin graph (twin, arm and camera nodes, DDS, sim time at 3x): the gymnasium API,
the twin env's observation layout, the scripted expert picking the cube through it, stale inputs and the
arm node's safety while an agent stops stepping."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from std_msgs.msg import Bool, String

from tether import spaces
from tether.config import RigConfig, load_rig
from tether.robot_ws import qos
from tether.robot_ws.graph import Graph, GraphSpec
from tether.robot_ws.robot_env import ExpertView, RobotEnv, StaleObservation
from tether.sim2real.twin.env import TwinEnv
from tether.sim2real.twin.expert import ScriptedOperator
from tether.types import Observation

log = logging.getLogger(__name__)
TIME_SCALE = 3.0
EXPERT_EPISODES = 4


def twin_graph(rig: RigConfig, *nodes: str) -> Graph:
    return Graph(GraphSpec(rig=rig, nodes=("twin", "arm", *nodes), time_scale=TIME_SCALE))


def layout(obs: Observation) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    return {key: (value.shape, value.dtype) for key, value in obs.items()}


@pytest.fixture
def rig() -> RigConfig:
    return load_rig("twin_panda")


def test_gymnasium_checks_and_the_twin_envs_layout(rig):
    twin = TwinEnv(rig=rig, obs_mode="state")
    twin_obs, _ = twin.reset(seed=0)
    twin.close()
    with twin_graph(rig), RobotEnv(rig, "state", sim_time=True) as env:
        assert env.observation_space == twin.observation_space
        assert env.action_space == twin.action_space
        check_env(env, skip_render_check=True, skip_close_check=True)
        obs, _ = env.reset()
        assert layout(obs) == layout(twin_obs)
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert layout(obs) == layout(twin_obs) and obs in env.observation_space
        assert (reward, terminated, truncated, info["action_rejected"]) == (0.0, False, False, False)
        with pytest.raises(ValueError, match=r"action of shape \(3,\): rig 'twin_panda' takes \(4,\)"):
            env.step(np.zeros(3, np.float32))
    assert not env.context.ok()  # closed on leaving `with`: node destroyed, its own context shut down
    env.close()  # a second close is allowed; stepping after it is not
    with pytest.raises(RuntimeError, match="after close"):
        env.step(env.action_space.sample())
    with pytest.raises(ValueError, match="obs_mode 'depth'"):
        RobotEnv(rig, "depth")


def test_episode_events_end_episodes(rig):
    """An operator's events: failure terminates, stop truncates; events from before the reset do not count."""
    zero = np.zeros(spaces.action_space(rig).shape[0], np.float32)
    with twin_graph(rig) as graph, RobotEnv(rig, "state", sim_time=True) as env:
        operator = graph.plain_node("operator")
        events = operator.create_publisher(String, "episode/events", qos.EVENTS)
        events.publish(String(data="success"))  # the previous episode's
        env.reset()
        assert env.step(zero)[1:4] == (0.0, False, False)
        events.publish(String(data="failure"))
        assert graph.wait(lambda: env.step(zero)[2], timeout_s=10)
        env.reset()
        events.publish(String(data="stop"))
        assert graph.wait(lambda: env.step(zero)[1:4] == (0.0, False, True), timeout_s=10)
        operator.destroy_node()


def test_scripted_expert_picks_the_cube_through_robot_env(rig):
    expert = ScriptedOperator(rig.teleop.scripted, seed=0)
    results = []
    with twin_graph(rig) as graph, RobotEnv(rig, "state", sim_time=True) as env:
        for _ in range(EXPERT_EPISODES):
            obs, _ = env.reset()
            expert.reset()
            terminated = truncated = False
            steps = 0
            while not (terminated or truncated):
                obs, reward, terminated, truncated, info = env.step(expert.act(ExpertView(rig, obs)))
                steps += 1
            results.append((info["success"], reward, terminated, steps))
        unsafe = {k: v for k, v in graph.node("arm").counters.items() if k.startswith("rejected_non_finite")}
    log.info("scripted expert through RobotEnv: %s", results)
    successes = [r for r in results if r[0]]
    assert successes, f"no success in {EXPERT_EPISODES} episodes: {results}"
    assert all(reward == 1.0 and terminated for _, reward, terminated, _ in successes)
    assert all(steps <= rig.task.episode_length for *_, steps in results)
    assert not unsafe


def test_a_camera_that_stops_makes_step_raise(rig):
    twin = TwinEnv(rig=rig, obs_mode="pixels")
    twin_obs, _ = twin.reset(seed=0)
    twin.close()
    with twin_graph(rig, "cameras") as graph, RobotEnv(rig, "pixels", sim_time=True) as env:
        obs, _ = env.reset()
        assert layout(obs) == layout(twin_obs)
        env.step(np.zeros(spaces.action_space(rig).shape[0], np.float32))
        graph.node("cameras").stop()  # the camera node stops publishing; the rest runs on
        with pytest.raises(StaleObservation) as error:
            for _ in range(5):
                env.step(np.zeros(spaces.action_space(rig).shape[0], np.float32))
    message = str(error.value)
    assert "\n" not in message
    assert "cameras/front/image_raw" in message or "cameras/wrist/image_raw" in message
    assert "safety.staleness_s" in message


def test_the_arm_holds_when_stepping_stops_and_obeys_estop(rig):
    with twin_graph(rig) as graph, RobotEnv(rig, "state", sim_time=True) as env:
        world, arm = graph.world, graph.node("arm")
        tcp = lambda: world.sim.tcp_pose()[0].copy()  # noqa: E731 - the twin's true TCP, not a message
        env.reset()
        start = tcp()
        for _ in range(5):
            env.step(np.array([0.0, 1.0, 0.0, -1.0], np.float32))
        assert tcp()[1] - start[1] > 0.03  # it moved (5 steps of up to 2 cm)
        # The agent stops stepping: after the watchdog period the arm node holds where the arm is.
        stopped = world.sim_clock()
        assert graph.wait(lambda: world.sim_clock() > stopped + 2 * rig.safety.watchdog_s, timeout_s=30)
        assert arm.counters["watchdog_hold"] >= 1
        held, at = tcp(), world.sim_clock()
        assert graph.wait(lambda: world.sim_clock() > at + 1.0, timeout_s=30)
        assert np.linalg.norm(tcp() - held) < 0.002

        estop = graph.plain_node("estop_test")
        estop.create_publisher(Bool, "estop", qos.LATCHED).publish(Bool(data=True))
        assert graph.wait(lambda: arm.estopped, timeout_s=10)
        before = tcp()
        for _ in range(5):  # RobotEnv keeps commanding; the arm node refuses every command
            env.step(np.array([0.0, -1.0, 0.0, -1.0], np.float32))
        assert np.linalg.norm(tcp() - before) < 0.002
        assert arm.counters["rejected_estop"] >= 5
        estop.destroy_node()
