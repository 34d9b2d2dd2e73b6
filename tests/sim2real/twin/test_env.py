"""The twin envs: gymnasium's checker, determinism, observations, limits, randomisation."""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env

from tether import spaces
from tether.config import load_rig, parse_rig, resolve_rig_path
from tether.sim2real.twin import ENV_IDS, make_env
from tether.sim2real.twin.env import TwinEnv
from tether.sim2real.twin.robot import panda_xml

pytestmark = pytest.mark.filterwarnings("ignore:.*Box observation space m.*:UserWarning")


@pytest.mark.parametrize("obs_mode", ["state", "pixels", "all"])
@pytest.mark.parametrize("task", sorted(ENV_IDS))
def test_check_env_passes(task, obs_mode):
    env = gym.make(ENV_IDS[task], obs_mode=obs_mode)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def rollout(env: gym.Env, seed: int, steps: int) -> list[dict]:
    obs, _ = env.reset(seed=seed)
    actions = np.random.default_rng(123).uniform(-1, 1, size=(steps, env.action_space.shape[0]))
    trace = [obs]
    for action in actions:
        obs, *_ = env.step(action.astype(np.float32))
        trace.append(obs)
    return trace


@pytest.mark.parametrize("task", sorted(ENV_IDS))
def test_same_seed_same_episode(task):
    first = rollout(make_env(task), seed=7, steps=15)
    second = rollout(make_env(task), seed=7, steps=15)
    other = rollout(make_env(task), seed=8, steps=15)
    for a, b in zip(first, second):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    task_key = next(k for k in first[0] if k not in spaces.PROPRIO_DIMS)
    assert not np.array_equal(first[0][task_key], other[0][task_key])


def test_pixel_observations_have_rig_shapes_and_dtypes():
    env = make_env("pick_cube", obs_mode="pixels")
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"images/front", "images/wrist", *spaces.PROPRIO_DIMS}
    for camera in ("front", "wrist"):
        image = obs[f"images/{camera}"]
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert image.std() > 5  # a rendered scene, not a blank frame
    for key, dim in spaces.PROPRIO_DIMS.items():
        assert obs[key].shape == (dim,) and obs[key].dtype == np.float32
    obs, *_ = env.step(np.array([1, 0, 0, 0], np.float32))
    assert obs["images/front"].shape == (128, 128, 3)


def test_state_mode_skips_rendering_and_adds_task_state():
    env = make_env("peg_insert")
    obs, _ = env.reset(seed=0)
    assert not any(spaces.is_image_key(k) for k in obs)
    assert obs["state/hole_pos"].shape == (3,)
    assert not env.unwrapped.sim.renders


def test_non_finite_action_is_held_and_reported():
    env = make_env("pick_cube")
    obs, _ = env.reset(seed=0)
    before = obs["state/tcp_pose"][:3]
    obs, _, _, _, info = env.step(np.array([np.nan, 0, 0, 0], np.float32))
    assert info["action_rejected"]
    assert np.all(np.isfinite(obs["state/tcp_pose"]))
    assert np.linalg.norm(obs["state/tcp_pose"][:3] - before) < 0.005


def test_workspace_box_and_speed_limit_hold():
    env = make_env("pick_cube")
    env.reset(seed=0)
    rig = env.unwrapped.rig
    max_step = rig.arm.max_linear_speed * rig.control_dt
    previous = env.unwrapped.sim.tcp_pose()[0]
    for _ in range(40):  # push down and out as hard as the action space allows
        obs, *_ = env.step(np.array([1, 1, -1, -1], np.float32))
        position = obs["state/tcp_pose"][:3]
        assert np.linalg.norm(position - previous) < 2.5 * max_step
        previous = position
    low, high = np.array(rig.arm.workspace.low), np.array(rig.arm.workspace.high)
    assert np.all(position >= low - 0.01) and np.all(position <= high + 0.01)
    assert position[1] == pytest.approx(high[1], abs=0.01)


def test_episode_truncates_at_rig_length():
    env = make_env("pick_cube")
    env.reset(seed=0)
    length = env.unwrapped.episode_length
    for step in range(1, length + 1):
        _, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
        assert reward == 0.0 and not terminated and not info["success"]
        assert truncated == (step == length)


def test_dense_reward_names_its_terms():
    env = make_env("pick_cube", reward="dense")
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.zeros(4, np.float32))
    assert set(info["reward_terms"]) == {"reach", "lift"}
    assert reward == pytest.approx(np.mean(list(info["reward_terms"].values())))


def randomized_rig(enabled: bool):
    data = yaml.safe_load(resolve_rig_path("twin_panda").read_text())
    data["randomization"]["enabled"] = enabled
    return parse_rig(data)


def test_randomization_changes_the_model_and_is_off_by_default():
    fields = ("geom_friction", "body_mass", "dof_damping", "actuator_gainprm", "cam_pos", "cam_fovy", "light_diffuse", "geom_rgba")
    env = TwinEnv(rig=randomized_rig(True), obs_mode="pixels")
    env.reset(seed=0)
    first = {f: getattr(env.sim.model, f).copy() for f in fields}
    first_image = env.reset(seed=0)[0]["images/front"]
    env.reset(seed=1)
    for field in fields:
        assert not np.array_equal(first[field], getattr(env.sim.model, field)), field
    env.reset(seed=0)
    for field in fields:  # draws come from the seed, not from the previous draw
        np.testing.assert_array_equal(first[field], getattr(env.sim.model, field))
    np.testing.assert_array_equal(first_image, env.reset(seed=0)[0]["images/front"])

    plain = TwinEnv(rig=randomized_rig(False))
    plain.reset(seed=0)
    nominal = {f: getattr(plain.sim.model, f).copy() for f in fields}
    plain.reset(seed=1)
    for field in fields:
        np.testing.assert_array_equal(nominal[field], getattr(plain.sim.model, field))


def test_action_latency_delays_motion():
    data = yaml.safe_load(resolve_rig_path("twin_panda").read_text())
    data["randomization"].update(enabled=True, action_latency_steps=[2, 2])
    env = TwinEnv(rig=parse_rig(data))
    obs, _ = env.reset(seed=0)
    start = obs["state/tcp_pose"][:3]
    for _ in range(2):
        obs, *_ = env.step(np.array([0, 1, 0, 0], np.float32))
        assert abs(obs["state/tcp_pose"][1] - start[1]) < 0.002
    obs, *_ = env.step(np.array([0, 1, 0, 0], np.float32))
    assert obs["state/tcp_pose"][1] - start[1] > 0.005


def test_a_perceived_cube_pose_is_noisy_and_goes_stale_while_measured_state_does_not():
    data = yaml.safe_load(resolve_rig_path("twin_panda").read_text())
    data["randomization"].update(enabled=True, obs_noise_std=0.0, object_pos_noise_std=0.004, object_dropout=0.5)
    env = TwinEnv(rig=parse_rig(data), obs_mode="state")
    errors, repeats, steps = [], 0, 200
    obs, _ = env.reset(seed=0)
    previous = obs["state/cube_pos"]
    for _ in range(steps):
        obs, *_ = env.step(np.array([0, 0, 0, 0], np.float32))
        seen = obs["state/cube_pos"]
        if np.array_equal(seen, previous):
            repeats += 1
            assert np.array_equal(obs["state/cube_quat"], env.unwrapped._perceived["cube_quat"])  # stale together
        else:
            errors.append(seen - env.sim.task_state()["cube_pos"])
        previous = seen
    assert 0.35 < repeats / steps < 0.65  # the marker unseen about half the time
    assert 0.003 < np.std(errors) < 0.005  # re-measured with the estimator's error
    assert np.array_equal(obs["state/tcp_pose"], env.sim.proprio()["state/tcp_pose"].astype(np.float32))  # measured exactly


def test_user_mjcf_robot(tmp_path: Path):
    (tmp_path / "my_robot.xml").write_text(panda_xml(joint_stiffness=1500.0))
    data = yaml.safe_load(resolve_rig_path("twin_panda").read_text())
    data["arm"]["model"] = "my_robot.xml"
    rig_path = tmp_path / "rig.yaml"
    rig_path.write_text(yaml.safe_dump(data))
    env = TwinEnv(rig=load_rig(rig_path))
    assert env.sim.model.actuator_gainprm[env.sim.controller.actuators[0], 0] == pytest.approx(1500.0)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(np.array([0, 0, -1, 0], np.float32))
    assert obs["state/tcp_vel"][2] < 0


def test_hardware_rig_is_refused_by_the_twin():
    with pytest.raises(ValueError, match="franka_realsense.*backend 'twin'"):
        TwinEnv(rig="franka_realsense")


def test_the_rig_sets_the_table_colour_and_light_that_the_cameras_see():
    rig = load_rig("twin_panda")
    dark = rig.model_copy(update={"twin_scene": rig.twin_scene.model_copy(
        update={"table_rgba": (0.2, 0.3, 0.6, 1.0), "light_diffuse": 0.2})})
    frames = []
    for each in (rig, dark):
        env = TwinEnv(rig=each, obs_mode="pixels")
        obs, _ = env.reset(seed=0)
        model = env.sim.model
        frames.append(obs["images/front"].astype(float))
        assert model.geom("table").rgba.tolist() == pytest.approx(list(each.twin_scene.table_rgba))
        assert model.light("top").diffuse.tolist() == pytest.approx([each.twin_scene.light_diffuse] * 3)
        env.close()
    # The bluer, dimmer table shows: the front camera's picture gets darker and bluer.
    assert frames[1].mean() < frames[0].mean() - 10
    assert frames[1][..., 2].mean() - frames[1][..., 0].mean() > frames[0][..., 2].mean() - frames[0][..., 0].mean()
