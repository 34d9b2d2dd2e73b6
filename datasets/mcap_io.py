"""MCAP (ROS 2 bag) to and from the episode store, on the topics of shared/DESIGN.md.

    export_mcap("demos.zarr", "demos.mcap")                    # any ROS 2 bag reader opens it
    import_mcap("session.mcap", "session.zarr", rig=load_rig("franka_realsense"))

Topic mapping (under the rig's namespace, default `/tether`):

    images/<camera>   cameras/<camera>/image_raw   sensor_msgs/Image (rgb8)
    state/tcp_pose    arm/tcp_pose                 geometry_msgs/PoseStamped (xyz, quaternion xyzw)
    state/tcp_vel     arm/tcp_twist                geometry_msgs/TwistStamped
    state/wrench      arm/wrench                   geometry_msgs/WrenchStamped
    state/joints      arm/joint_states             sensor_msgs/JointState (position)
    state/gripper     gripper/state                std_msgs/Float32
    action            arm/cmd + gripper/cmd        TwistStamped (TCP velocity, m/s and rad/s, as the live
                                                   graph sends it: `tether.actions`) + Float32
    intervened        teleop/engaged               std_msgs/Bool
    episode bounds    episode/events               std_msgs/String: reset, then success | failure | timeout

Import splits episodes on `episode/events` (`reset` opens one, `success` / `failure` end it
terminated, `timeout` / `stop` / `learner_lost` end it truncated, as the actor node names them; `rerecord`
throws it away) and aligns every topic to a
fixed rate: tick k of an episode is at t0 + k / fps (t0: first frame of the reference topic, the
first camera or else the TCP pose) and takes each topic's latest sample no later than half a
period after the tick (nearest-earlier). The observation at the end event is the episode's final
observation. Reward is not a ROS topic: import rebuilds it as sparse (1 on a success step).
`policy_action` and state keys without a topic are not exported. Timestamps are header stamps
(log time for messages without a header), exact to the nanosecond.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np
from mcap.reader import make_reader
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter
from mcap_ros2.decoder import DecoderFactory
from mcap_ros2.writer import Writer
from rosbags.typesys import Stores, get_typestore
from tqdm import tqdm

from tether.actions import GRIPPER_LAYOUTS, ActionScale, gripper_part
from tether.config import RigConfig
from tether.frames import BASE_FRAME, TOOL_FRAME, optical_frame
from tether.datasets.store import EpisodeStore, EpisodeWriter, StoreError
from tether.spaces import IMAGES, is_image_key

log = logging.getLogger(__name__)

NS = 1_000_000_000
END_EVENTS = {"success": (True, False), "failure": (True, False),  # terminated, truncated
              "timeout": (False, True), "stop": (False, True), "learner_lost": (False, True)}


@dataclass(frozen=True)
class _StateTopic:
    """How one state key maps to a topic: message type, and array <-> message fields."""

    topic: str
    msgtype: str
    dim: int | None  # fixed vector size, None when any
    to_msg: Callable[[np.ndarray], dict[str, Any]]
    from_msg: Callable[[Any], list[float]]
    frame: str = BASE_FRAME


def _vec(v: np.ndarray, names: str = "xyz") -> dict[str, float]:
    return {n: float(x) for n, x in zip(names, v)}


def _xyz(m: Any) -> list[float]:
    return [m.x, m.y, m.z]


STATE_TOPICS: dict[str, _StateTopic] = {
    "state/tcp_pose": _StateTopic(
        "arm/tcp_pose", "geometry_msgs/msg/PoseStamped", 7,
        lambda v: {"pose": {"position": _vec(v[:3]), "orientation": _vec(v[3:], "xyzw")}},
        lambda m: [*_xyz(m.pose.position), *_xyz(m.pose.orientation), m.pose.orientation.w],
    ),
    "state/tcp_vel": _StateTopic(
        "arm/tcp_twist", "geometry_msgs/msg/TwistStamped", 6,
        lambda v: {"twist": {"linear": _vec(v[:3]), "angular": _vec(v[3:])}},
        lambda m: [*_xyz(m.twist.linear), *_xyz(m.twist.angular)],
    ),
    "state/wrench": _StateTopic(
        "arm/wrench", "geometry_msgs/msg/WrenchStamped", 6,
        lambda v: {"wrench": {"force": _vec(v[:3]), "torque": _vec(v[3:])}},
        lambda m: [*_xyz(m.wrench.force), *_xyz(m.wrench.torque)], TOOL_FRAME,
    ),
    "state/joints": _StateTopic(
        "arm/joint_states", "sensor_msgs/msg/JointState", None,
        lambda v: {"name": [f"joint{i + 1}" for i in range(len(v))], "position": [float(x) for x in v],
                   "velocity": [], "effort": []},
        lambda m: list(m.position),
    ),
    "state/gripper": _StateTopic(
        "gripper/state", "std_msgs/msg/Float32", 1, lambda v: {"data": float(v[0])}, lambda m: [m.data]
    ),
}  # fmt: skip
CMD, GRIPPER_CMD, ENGAGED, EVENTS = "arm/cmd", "gripper/cmd", "teleop/engaged", "episode/events"


def _image_topic(key: str) -> str:
    return f"cameras/{key[len(IMAGES):]}/image_raw"


def _stamp(ns: int) -> dict[str, int]:
    return {"sec": ns // NS, "nanosec": ns % NS}


def _to_ns(seconds: float) -> int:
    return round(seconds * NS)


def message_definition(msgtype: str) -> str:
    """The ROS 2 message definition text of `msgtype` (e.g. `std_msgs/msg/String`), from rosbags' Jazzy types."""
    text, _ = get_typestore(Stores.ROS2_JAZZY).generate_msgdef(msgtype, ros_version=2)
    return text


class _BagWriter:
    """mcap_ros2's writer with message definitions taken from rosbags' Jazzy type store."""

    def __init__(self, stream: Any, namespace: str) -> None:
        self._writer = Writer(stream)
        self._schemas: dict[str, Any] = {}
        self._namespace = namespace.rstrip("/")
        self.count = 0

    def write(self, topic: str, msgtype: str, message: dict[str, Any], ns: int) -> None:
        if msgtype not in self._schemas:
            self._schemas[msgtype] = self._writer.register_msgdef(msgtype, message_definition(msgtype))
        self._writer.write_message(f"{self._namespace}/{topic}", self._schemas[msgtype], message, ns, ns)
        self.count += 1

    def stamped(self, topic: str, msgtype: str, body: dict[str, Any], ns: int, frame: str = BASE_FRAME) -> None:
        self.write(topic, msgtype, {"header": {"stamp": _stamp(ns), "frame_id": frame}, **body}, ns)

    def finish(self) -> None:
        self._writer.finish()


def bag_topics(cameras: list[str]) -> dict[str, str]:
    """What a recording of the live graph holds, topic (under the namespace) -> message type: the topics import
    reads, plus each camera's calibration."""
    topics = {f"cameras/{name}/image_raw": "sensor_msgs/msg/Image" for name in cameras}
    topics |= {f"cameras/{name}/camera_info": "sensor_msgs/msg/CameraInfo" for name in cameras}
    topics |= {spec.topic: spec.msgtype for spec in STATE_TOPICS.values()}
    return topics | {CMD: "geometry_msgs/msg/TwistStamped", GRIPPER_CMD: "std_msgs/msg/Float32",
                     ENGAGED: "std_msgs/msg/Bool", EVENTS: "std_msgs/msg/String"}


class SerializedBagWriter:
    """An MCAP file of messages already serialised as CDR (what an rclpy raw subscription receives), with the
    message definitions a ROS 2 bag reader needs to decode them."""

    def __init__(self, stream: Any) -> None:
        self._writer = McapWriter(stream, compression=CompressionType.ZSTD)
        self._writer.start(profile="ros2", library="tether")
        self._channels: dict[str, int] = {}

    def write(self, topic: str, msgtype: str, data: bytes, ns: int) -> None:
        if topic not in self._channels:
            schema = self._writer.register_schema(msgtype, "ros2msg", message_definition(msgtype).encode())
            self._channels[topic] = self._writer.register_channel(topic, "cdr", schema)
        self._writer.add_message(self._channels[topic], log_time=ns, data=data, publish_time=ns)

    def finish(self) -> None:
        self._writer.finish()


def _action_scale(store: EpisodeStore, action_scale: tuple[float, float] | None) -> ActionScale:
    """The store's action convention: its rig snapshot's scale (or the one given), one period per frame."""
    if action_scale is None and store.rig is None:
        raise StoreError(f"{store.path}: no rig snapshot to scale actions by; pass action_scale")
    translation, rotation = action_scale if action_scale is not None else store.rig["arm"]["action_scale"]
    dim = store.spec.action_dim
    return ActionScale(float(translation), float(rotation), 1.0 / store.fps, dim in (6, 7), dim in GRIPPER_LAYOUTS)


def export_mcap(
    store_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    namespace: str = "/tether",
    action_scale: tuple[float, float] | None = None,
    progress: bool = False,
) -> int:
    """Write every committed episode as ROS 2 messages into one MCAP file; returns messages written."""
    store = EpisodeStore(store_path)
    scale = _action_scale(store, action_scale)
    skipped = [k for k in store.spec.obs if not is_image_key(k) and k not in STATE_TOPICS]
    if skipped:
        log.warning("%s: no ROS topic for %s; not exported", store.path, ", ".join(skipped))
    with open(out, "wb") as stream:
        bag = _BagWriter(stream, namespace)
        for info in tqdm(store.episodes, desc="export", unit="episode", disable=None if progress else True):
            episode = store.episode(info.index)
            times = episode.timestamp
            synthetic = info.start_time + np.arange(len(episode) + 1) / store.fps
            times = np.where(np.isfinite(times), times, synthetic[:-1]) if times is not None else synthetic[:-1]
            final_time = times[-1] + 1.0 / store.fps
            stamps = [_to_ns(t) for t in [*times, final_time]]
            bag.write(EVENTS, "std_msgs/msg/String", {"data": "reset"}, stamps[0])
            for t, ns in enumerate(stamps):
                obs = episode.obs if t < len(episode) else None
                for key in store.spec.obs:
                    value = obs[key][t] if obs is not None else episode.final_obs[key]
                    if is_image_key(key):
                        height, width, _ = value.shape
                        body = {"height": height, "width": width, "encoding": "rgb8", "is_bigendian": 0,
                                "step": 3 * width, "data": value.tobytes()}  # fmt: skip
                        bag.stamped(_image_topic(key), "sensor_msgs/msg/Image", body, ns, optical_frame(key[len(IMAGES):]))
                    elif key in STATE_TOPICS:
                        spec = STATE_TOPICS[key]
                        if spec.msgtype.startswith("std_msgs"):
                            bag.write(spec.topic, spec.msgtype, spec.to_msg(value), ns)
                        else:
                            bag.stamped(spec.topic, spec.msgtype, spec.to_msg(value), ns, spec.frame)
                if obs is None:
                    break
                velocity = scale.to_velocity(episode.action[t])
                twist = {"twist": {"linear": _vec(velocity[:3]), "angular": _vec(velocity[3:])}}
                bag.stamped(CMD, "geometry_msgs/msg/TwistStamped", twist, ns)
                gripper = gripper_part(episode.action[t])
                if gripper is not None:
                    bag.write(GRIPPER_CMD, "std_msgs/msg/Float32", {"data": gripper}, ns)
                bag.write(ENGAGED, "std_msgs/msg/Bool", {"data": bool(episode.intervened[t])}, ns)
            end = "success" if info.success else ("timeout" if episode.truncated[-1] else "failure")
            bag.write(EVENTS, "std_msgs/msg/String", {"data": end}, stamps[-1])
        bag.finish()
    return bag.count


@dataclass
class _Series:
    """One topic's samples in time order."""

    times: list[int]
    values: list[np.ndarray]

    def at(self, tick: int, tolerance: int, topic: str) -> tuple[int, np.ndarray]:
        """The latest sample no later than tick + tolerance."""
        i = int(np.searchsorted(np.asarray(self.times), tick + tolerance, side="right")) - 1
        if i < 0:
            raise StoreError(f"topic {topic}: no sample at or before t={tick / NS:.3f}s")
        return self.times[i], self.values[i]

    def first_from(self, ns: int) -> int | None:
        """The time of the first sample at or after `ns`, None if there is none."""
        i = int(np.searchsorted(np.asarray(self.times), ns, side="left"))
        return self.times[i] if i < len(self.times) else None


def _decode_image(topic: str, message: Any) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an rgb8 or bgr8 `sensor_msgs/Image` (rows may be padded)."""
    pixels = np.frombuffer(bytes(message.data), np.uint8).reshape(message.height, message.step)
    pixels = pixels[:, : 3 * message.width].reshape(message.height, message.width, 3)
    if message.encoding == "bgr8":
        return pixels[..., ::-1].copy()
    if message.encoding != "rgb8":
        raise StoreError(f"topic {topic}: image encoding '{message.encoding}' is not rgb8 or bgr8")
    return pixels.copy()


def _read_bag(mcap_path: str | os.PathLike[str], namespace: str) -> tuple[dict[str, _Series], list[tuple[int, str]]]:
    """Every sample of the mapped topics under `namespace`, and the episode events (bags are
    converted in memory)."""
    try:
        with open(mcap_path, "rb") as stream:
            return _read_messages(stream, namespace)
    except (OSError, StoreError):
        raise
    except Exception as error:  # the mcap and ROS 2 decoders raise many kinds on a malformed file
        raise StoreError(f"{mcap_path}: not a readable MCAP file: {type(error).__name__}: {error}") from None


def _read_messages(stream: Any, namespace: str) -> tuple[dict[str, _Series], list[tuple[int, str]]]:
    """The samples and events of an open bag (see `_read_bag`)."""
    series: dict[str, _Series] = {}
    events: list[tuple[int, str]] = []
    for _, channel, raw, message in make_reader(stream, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
        topic = channel.topic
        if not topic.startswith(namespace):
            continue
        name = topic[len(namespace) :]
        header = getattr(message, "header", None)
        ns = header.stamp.sec * NS + header.stamp.nanosec if header is not None else raw.log_time
        if name == EVENTS:
            events.append((ns, message.data))
            continue
        state = next((k for k, s in STATE_TOPICS.items() if s.topic == name), None)
        if state is not None:
            value = np.asarray(STATE_TOPICS[state].from_msg(message), np.float32)
        elif name == CMD:
            twist = message.twist
            value = np.array([*_xyz(twist.linear), *_xyz(twist.angular)], np.float64)
        elif name.startswith("cameras/") and name.endswith("/image_raw"):
            value = _decode_image(topic, message)
        elif name in (GRIPPER_CMD, ENGAGED):
            value = np.asarray(message.data)
        else:
            continue
        series.setdefault(name, _Series([], [])).times.append(ns)
        series[name].values.append(value)
    return series, events


def import_mcap(
    mcap_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    rig: RigConfig,
    fps: float | None = None,
    source: str = "teleop",
    task: str = "",
    progress: bool = False,
) -> int:
    """Episodes of a bag into a store (created, or appended to if its spec matches); returns how many."""
    namespace = rig.namespace.rstrip("/") + "/"
    fps = fps or rig.arm.control_rate_hz
    period = round(NS / fps)
    series, events = _read_bag(mcap_path, namespace)
    cameras = sorted(n for n in series if n.startswith("cameras/"))
    obs_topics = {f"{IMAGES}{n.split('/')[1]}": n for n in cameras}
    obs_topics |= {k: s.topic for k, s in STATE_TOPICS.items() if s.topic in series}
    scale = replace(ActionScale.of_rig(rig), control_dt=1.0 / fps)  # an action is one of the store's periods
    commands = (CMD, GRIPPER_CMD) if scale.gripper else (CMD,)
    missing = [t for t in commands if t not in series]
    if not obs_topics or missing:
        raise StoreError(f"{mcap_path}: needs observation topics and {' + '.join(commands)} under {namespace}; missing {missing or 'observations'}")
    reference = cameras[0] if cameras else obs_topics.get("state/tcp_pose", next(iter(obs_topics.values())))
    space = gym.spaces.Dict(
        {key: gym.spaces.Box(0 if is_image_key(key) else -np.inf, 255 if is_image_key(key) else np.inf,
                             shape=series[topic].values[0].shape, dtype=series[topic].values[0].dtype)
         for key, topic in obs_topics.items()}
    )  # fmt: skip
    written = 0
    with EpisodeWriter.create(out, space, scale.dim, fps, rig, exist_ok=True) as writer:
        start: int | None = None
        for ns, event in tqdm(sorted(events), desc="import", unit="event", disable=None if progress else True):
            if event == "reset":
                start = ns
            elif event == "rerecord":
                start = None
            elif event in END_EVENTS and start is not None:
                # The first step is the first reference sample once this episode has commands (a live bag's
                # first command follows the first frames by the actor's latency).
                commanded = [series[topic].first_from(start) for topic in commands]
                t0 = None
                if None not in commanded:
                    t0 = series[reference].first_from(max(start, *(c - period // 2 for c in commanded)))
                ticks = list(range(t0, ns - period // 2, period)) if t0 is not None else []
                if not ticks:
                    start = None
                    continue
                terminated, truncated = END_EVENTS[event]
                writer.begin_episode(source=source, task=task, start_time=t0 / NS)
                for k, tick in enumerate(ticks):
                    stamp, _ = series[reference].at(tick, period // 2, reference)
                    obs = {key: series[topic].at(tick, period // 2, topic)[1] for key, topic in obs_topics.items()}
                    _, twist = series[CMD].at(tick, period // 2, CMD)
                    engaged = ENGAGED in series and bool(series[ENGAGED].at(tick, period // 2, ENGAGED)[1])
                    gripper = series[GRIPPER_CMD].at(tick, period // 2, GRIPPER_CMD)[1] if scale.gripper else 0.0
                    action = scale.to_action(twist, float(gripper))
                    last = k == len(ticks) - 1
                    writer.add_step(
                        obs, action, reward=float(last and event == "success"), terminated=last and terminated,
                        truncated=last and truncated, intervened=engaged, timestamp=stamp / NS,
                    )  # fmt: skip
                final = {key: series[topic].at(ns, period // 2, topic)[1] for key, topic in obs_topics.items()}
                writer.end_episode(success=event == "success", final_obs=final)
                written += 1
                start = None
    return written
