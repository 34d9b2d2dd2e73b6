"""The reach task: a target in the workspace box, in the observation, reached by the scripted operator;
rigs (hardware ones too) can name it, and a hardware rig has a twin with its own limits."""

import numpy as np
import pytest

from tether.actions import GRIPPERLESS_TASKS
from tether.config import load_rig, parse_rig
from tether.sim2real.twin import make_env
from tether.sim2real.twin.expert import ScriptedOperator, run_episode
from tether.sim2real.twin.rig import twin_rig
from tether.sim2real.twin.tasks import REACH_MARGIN, TASKS, Reach, sample_reach_target


def test_target_is_in_the_observation_inside_the_workspace_and_seeded():
    env = make_env("reach")
    box = env.unwrapped.rig.arm.workspace
    targets = []
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        targets.append(obs["state/target_pos"])
        assert np.all(obs["state/target_pos"] >= np.array(box.low) + REACH_MARGIN - 1e-6)
        assert np.all(obs["state/target_pos"] <= np.array(box.high) - REACH_MARGIN + 1e-6)
    again, _ = env.reset(seed=3)
    np.testing.assert_array_equal(again["state/target_pos"], targets[3])
    assert len({tuple(t) for t in targets}) == 20


def test_success_and_dense_term_follow_the_tcp_distance():
    env = make_env("reach", reward="dense")
    env.reset(seed=0)
    sim = env.unwrapped.sim
    target = sim.task_state()["target_pos"].astype(float)
    tcp = sim.tcp_pose()[0]
    far = sim.score()
    assert not far.success and 0.0 <= far.terms["reach"] < 1.0
    sim.model.site_pos[sim.model.site("target").id] = tcp + np.array([0.0, 0.0, Reach.tolerance / 2])
    near = sim.score()
    assert near.success and near.terms["reach"] > far.terms["reach"]
    assert np.linalg.norm(target - tcp) > Reach.tolerance


def test_no_objects_on_the_table():
    model = make_env("reach").unwrapped.sim.model
    bodies = [model.body(b).name for b in range(1, model.nbody)]
    assert all(name.startswith("robot/") for name in bodies)
    assert model.nq == 9  # seven arm joints and two fingers: nothing else moves


def test_scripted_operator_reaches_every_seeded_target():
    env = make_env("reach")
    operator = ScriptedOperator(env.unwrapped.rig.teleop.scripted, seed=0)
    results = [run_episode(env, operator, seed=seed) for seed in range(20)]
    assert all(success for success, _ in results)
    assert max(length for _, length in results) < env.unwrapped.episode_length


def test_hardware_rig_can_name_reach_and_train_in_its_twin():
    franka = load_rig("franka_realsense")
    data = franka.model_dump(mode="json", exclude_none=True) | {"task": {"name": "reach", "reward": "operator"}}
    rig = parse_rig(data)
    assert rig.task.name == "reach"
    twin = twin_rig(rig)
    assert twin.arm.backend == "twin" and twin.cameras == []  # its RealSense cameras have no pose to render from
    for field in ("workspace", "action_scale", "max_linear_speed", "control_rate_hz", "home_joints"):
        assert getattr(twin.arm, field) == getattr(franka.arm, field)
    env = make_env("reach", rig=twin)
    obs, _ = env.reset(seed=1)
    low = np.array(franka.arm.workspace.low) + REACH_MARGIN
    assert np.all(obs["state/target_pos"] >= low - 1e-6)
    assert twin_rig(load_rig("twin_panda")) == load_rig("twin_panda")


def test_too_small_a_workspace_is_refused():
    box = load_rig("twin_panda").arm.workspace.model_copy(update={"low": (0.3, -0.05, 0.0), "high": (0.7, 0.05, 0.5)})
    with pytest.raises(ValueError, match="too small"):
        sample_reach_target(box, np.random.default_rng(0))


def test_reach_acts_without_a_gripper_and_refuses_an_action_of_another_layout():
    env = make_env("reach")
    assert env.action_space.shape == (3,)  # [dx dy dz]: the fingers stay open whatever a policy does
    env.reset(seed=0)
    action = ScriptedOperator(env.unwrapped.rig.teleop.scripted, seed=0).act(env)
    assert action.shape == (3,)
    obs = env.step(action)[0]
    np.testing.assert_allclose(env.unwrapped.sim.gripper_opening(), 1.0, atol=0.02)
    assert "state/gripper" not in obs  # nor does it observe them: a real gripper sits wherever it was left
    with pytest.raises(ValueError, match=r"action of shape \(4,\): this env takes \(3,\)"):
        env.step(np.zeros(4, np.float32))  # a checkpoint with a gripper dimension is refused, not misread
    assert make_env("pick_cube").action_space.shape == (4,)
    assert all(TASKS[name].gripper_hold is not None for name in GRIPPERLESS_TASKS)  # no action: the twin holds it
