from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from tether.config import load_rig
from tether.datasets.episode import EpisodeArrays
from tether.datasets.mcap_io import export_mcap, import_mcap
from tether.datasets.store import EpisodeStore, EpisodeWriter
from tether.robot_ws import messages as messages_of_graph

SHAPES = {"state/tcp_pose": 7, "state/tcp_vel": 6, "state/gripper": 1, "state/joints": 7}


def _space() -> gym.spaces.Dict:
    spaces = {f"images/{cam}": gym.spaces.Box(0, 255, (10, 14, 3), np.uint8) for cam in ("front", "wrist")}
    spaces |= {key: gym.spaces.Box(-np.inf, np.inf, (d,), np.float32) for key, d in SHAPES.items()}
    return gym.spaces.Dict(spaces)


def _episode(i: int, length: int, end: str, action_dim: int = 4) -> EpisodeArrays:
    rng = np.random.default_rng(i)
    frames = {key: rng.integers(0, 256, (length + 1, *box.shape), np.uint8) if box.dtype == np.uint8
              else rng.standard_normal((length + 1, *box.shape)).astype(np.float32)
              for key, box in _space().spaces.items()}  # fmt: skip
    last = np.arange(length) == length - 1
    return EpisodeArrays(
        obs={key: value[:-1] for key, value in frames.items()},
        final_obs={key: value[-1] for key, value in frames.items()},
        action=rng.uniform(-1, 1, (length, action_dim)).astype(np.float32),
        policy_action=np.full((length, action_dim), np.nan, np.float32),
        reward=(last & (end == "success")).astype(np.float32),
        terminated=last & (end != "timeout"),
        truncated=last & (end == "timeout"),
        intervened=rng.random(length) < 0.5,
        timestamp=500.0 + 20 * i + np.arange(length) / 10.0,
    )


def test_mcap_round_trip_is_exact_and_readable_by_rosbags(tmp_path: Path) -> None:
    rig = load_rig("twin_panda")
    ends = ["success", "failure", "timeout"]
    episodes = [_episode(i, n, end) for i, (n, end) in enumerate(zip([6, 1, 9], ends))]
    store = tmp_path / "in.zarr"
    with EpisodeWriter.create(store, _space(), 4, fps=rig.arm.control_rate_hz, rig=rig) as writer:
        for episode, end in zip(episodes, ends):
            writer.write_episode(episode, source="teleop", success=end == "success")
    bag = tmp_path / "out.mcap"
    written = export_mcap(store, bag)

    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        messages = [(c.topic, reader.deserialize(raw, c.msgtype)) for c, _, raw in reader.messages()]
    assert len(messages) == written
    assert types["/tether/cameras/front/image_raw"] == "sensor_msgs/msg/Image"
    assert types["/tether/arm/cmd"] == "geometry_msgs/msg/TwistStamped"
    assert types["/tether/arm/joint_states"] == "sensor_msgs/msg/JointState"
    assert types["/tether/episode/events"] == "std_msgs/msg/String"
    events = [m.data for topic, m in messages if topic == "/tether/episode/events"]
    assert events == ["reset", "success", "reset", "failure", "reset", "timeout"]  # the actor node's outcomes
    # arm/cmd carries what the live graph's actor publishes for the same action: a velocity, not a per-step move.
    commands = [m.twist for topic, m in messages if topic == "/tether/arm/cmd"]
    first_pose = next(m for topic, m in messages if topic == "/tether/arm/tcp_pose")
    for twist, action in zip(commands, np.concatenate([e.action for e in episodes])):
        sent = messages_of_graph.action_to_velocity(action, rig)
        assert np.allclose([twist.linear.x, twist.linear.y, twist.linear.z], sent[:3])
    assert np.isclose(commands[0].linear.x, episodes[0].action[0, 0] * rig.arm.action_scale[0] / rig.control_dt)
    images = [m for topic, m in messages if topic == "/tether/cameras/wrist/image_raw"]
    assert len(images) == 16 + 3 and images[0].encoding == "rgb8"  # every frame plus each final obs
    assert images[0].header.frame_id == "wrist_optical_frame" and first_pose.header.frame_id == "base_link"

    back = tmp_path / "back.zarr"
    assert import_mcap(bag, back, rig=rig, source="teleop") == 3
    restored = EpisodeStore(back)
    assert restored.observation_space == _space()
    for i, (episode, end) in enumerate(zip(episodes, ends)):
        got = restored.episode(i)
        for key in episode.obs:
            np.testing.assert_array_equal(got.obs[key], episode.obs[key], err_msg=key)
            np.testing.assert_array_equal(got.final_obs[key], episode.final_obs[key], err_msg=key)
        for name in ("action", "reward", "terminated", "truncated", "intervened", "timestamp", "policy_action"):
            np.testing.assert_array_equal(getattr(got, name), getattr(episode, name), err_msg=name)
        assert restored.episodes[i].success == (end == "success")


def test_a_gripperless_store_round_trips_without_gripper_commands(tmp_path: Path) -> None:
    """Reach acts as [dx dy dz] (tether.actions): its bag has no gripper/cmd, and importing it needs none."""
    rig = load_rig("twin_panda")
    rig = rig.model_copy(update={"task": rig.task.model_copy(update={"name": "reach"})})
    episode = _episode(0, 5, "success", action_dim=3)
    store = tmp_path / "in.zarr"
    with EpisodeWriter.create(store, _space(), 3, fps=rig.arm.control_rate_hz, rig=rig) as writer:
        writer.write_episode(episode, source="policy", success=True)
    bag = tmp_path / "out.mcap"
    export_mcap(store, bag)
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        assert "/tether/gripper/cmd" not in {c.topic for c in reader.connections}
    back = tmp_path / "back.zarr"
    assert import_mcap(bag, back, rig=rig, source="policy") == 1
    np.testing.assert_array_equal(EpisodeStore(back).episode(0).action, episode.action)
