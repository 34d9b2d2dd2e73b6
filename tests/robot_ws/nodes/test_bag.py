"""The bag node records the live graph into a ROS 2 bag: recorded through the real graph on the twin, read by
rosbags (a reader that is not tether's), and imported back into a store that matches the recorder's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from rosbags.highlevel import AnyReader

from tether.cli.robot import record_demos
from tether.config import load_rig
from tether.datasets.mcap_io import import_mcap
from tether.datasets.store import EpisodeStore

EPISODE_LENGTH = 12  # the scripted pick takes tens of steps: every episode ends by timeout


def _short_rig(tmp_path: Path) -> Path:
    rig = load_rig("twin_panda").model_dump(mode="json")
    rig["task"]["episode_length"] = EPISODE_LENGTH
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(rig))
    return path


def test_a_recorded_bag_holds_the_graphs_topics_and_imports_as_the_recorders_episodes(
    tmp_path: Path, ros_domain, own_signal_handlers
) -> None:
    rig_path, bag, recorded = _short_rig(tmp_path), tmp_path / "session.mcap", tmp_path / "demos.zarr"
    with own_signal_handlers():
        summary = record_demos(str(rig_path), recorded, 2, seed=0, time_scale=1.0, progress=False, bag=bag)
    assert summary["episodes"] == 2

    with AnyReader([bag]) as reader:
        counts = {connection.topic: connection.msgcount for connection in reader.connections}
        types = {connection.topic: connection.msgtype for connection in reader.connections}
        events = [reader.deserialize(raw, c.msgtype).data for c, _, raw in reader.messages()
                  if c.topic == "/tether/episode/events"]
    assert types["/tether/arm/cmd"] == "geometry_msgs/msg/TwistStamped"
    assert types["/tether/cameras/front/camera_info"] == "sensor_msgs/msg/CameraInfo"
    for topic in ("cameras/front/image_raw", "cameras/wrist/image_raw", "arm/tcp_pose", "arm/cmd", "gripper/cmd"):
        assert counts[f"/tether/{topic}"] >= 2 * EPISODE_LENGTH, topic
    assert events[:4] == ["reset", "timeout", "reset", "timeout"]

    imported = tmp_path / "imported.zarr"
    assert import_mcap(bag, imported, rig=load_rig(str(rig_path)), source="teleop") == 2
    theirs, ours = EpisodeStore(recorded), EpisodeStore(imported)
    for index in range(2):
        live, back = theirs.episode(index), ours.episode(index)
        assert back.truncated[-1] and not back.terminated[-1] and live.truncated[-1]  # the timeout survived
        assert abs(len(back) - len(live)) <= 1
        # Import resamples the bag at the rig's rate, where live ticks jitter: each recorded step is paired with
        # the imported step nearest in time. The commands are the same numbers in the same units (a per-step
        # delta read as a velocity would be 10x off at 10 Hz).
        nearest = np.abs(back.timestamp[None, :] - live.timestamp[:, None]).argmin(axis=1)
        exact = np.all(np.isclose(back.action[nearest], live.action, atol=1e-5), axis=1)
        assert exact.mean() >= 0.8, (index, exact)
