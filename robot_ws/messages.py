"""Conversions between tether's numpy records and the standard ROS 2 messages of DESIGN.md.

Everything that crosses a topic goes through here, so units and layouts are decided once:
- `arm/cmd` and `teleop/cmd` carry TCP velocity (m/s, rad/s, base frame) as MoveIt Servo
  does; a normalised action becomes a velocity by `action_scale / control_dt`.
- `learner/transitions` and `learner/weights` carry safetensors bytes in a UInt8MultiArray:
  typed, versioned, never unpickled.
- Frames are `tether.frames`' names (REP-103 / REP-105).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float32MultiArray, MultiArrayDimension, UInt8MultiArray

from tether.actions import ActionScale
from tether.config import CameraConfig, RigConfig
from tether.frames import BASE_FRAME, TOOL_FRAME, optical_frame
from tether.types import Transition

RECORD_VERSION = "1"


# --- time ------------------------------------------------------------------------------


def to_stamp(seconds: float) -> Time:
    nanoseconds = int(round(seconds * 1e9))
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def from_stamp(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


# --- images ----------------------------------------------------------------------------


def image_msg(image: np.ndarray, stamp: float, frame_id: str) -> Image:
    height, width = image.shape[:2]
    msg = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3)
    msg.header.stamp = to_stamp(stamp)
    msg.header.frame_id = frame_id
    msg.data = np.ascontiguousarray(image, dtype=np.uint8).tobytes()
    return msg


def image_array(msg: Image) -> np.ndarray:
    if msg.encoding != "rgb8":
        raise ValueError(f"image on frame '{msg.header.frame_id}': encoding '{msg.encoding}', expected rgb8")
    return np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.width, 3)


def camera_info_msg(camera: CameraConfig, stamp: float) -> CameraInfo:
    """Pinhole intrinsics of the image the camera node publishes: the calibrated ones (`tether calibrate
    camera`) or, without a calibration, those of the twin's field of view (58 degrees vertical if none is
    given), carried through the rig's crop and resize."""
    width, height = camera.resolution
    calibrated = camera.intrinsics
    if calibrated is not None:
        fx, fy, cx, cy, distortion = calibrated.fx, calibrated.fy, calibrated.cx, calibrated.cy, calibrated.distortion
    else:
        fy = 0.5 * height / np.tan(0.5 * np.deg2rad(camera.pose.fovy_deg if camera.pose is not None else 58.0))
        fx, cx, cy, distortion = fy, width / 2, height / 2, (0.0,) * 5
    x0, y0, x1, y1 = camera.crop or (0, 0, width, height)
    out_w, out_h = camera.output_size
    sx, sy = out_w / (x1 - x0), out_h / (y1 - y0)
    fx, fy, cx, cy = fx * sx, fy * sy, (cx - x0) * sx, (cy - y0) * sy
    msg = CameraInfo(width=out_w, height=out_h, distortion_model="plumb_bob")
    msg.header.stamp = to_stamp(stamp)
    msg.header.frame_id = optical_frame(camera.name)
    msg.d = [float(v) for v in distortion]
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


# --- arm state -------------------------------------------------------------------------


def joint_state_msg(names: tuple[str, ...], position, velocity, effort, stamp: float) -> JointState:
    msg = JointState(name=list(names))
    msg.header.stamp = to_stamp(stamp)
    msg.position = [float(v) for v in position]
    msg.velocity = [float(v) for v in velocity]
    msg.effort = [float(v) for v in effort]
    return msg


def pose_msg(pose: np.ndarray, stamp: float, frame_id: str = BASE_FRAME) -> PoseStamped:
    """xyz + quaternion xyzw -> PoseStamped."""
    msg = PoseStamped()
    msg.header.stamp = to_stamp(stamp)
    msg.header.frame_id = frame_id
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in pose[:3])
    q.x, q.y, q.z, q.w = (float(v) for v in pose[3:7])
    return msg


def pose_array(msg: PoseStamped) -> np.ndarray:
    p, q = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w])


def twist_msg(twist: np.ndarray, stamp: float, frame_id: str = BASE_FRAME) -> TwistStamped:
    """(6,) linear + angular -> TwistStamped."""
    msg = TwistStamped()
    msg.header.stamp = to_stamp(stamp)
    msg.header.frame_id = frame_id
    linear, angular = msg.twist.linear, msg.twist.angular
    linear.x, linear.y, linear.z = (float(v) for v in twist[:3])
    angular.x, angular.y, angular.z = (float(v) for v in twist[3:6])
    return msg


def twist_array(msg: TwistStamped) -> np.ndarray:
    linear, angular = msg.twist.linear, msg.twist.angular
    return np.array([linear.x, linear.y, linear.z, angular.x, angular.y, angular.z])


def wrench_msg(wrench: np.ndarray, stamp: float, frame_id: str = TOOL_FRAME) -> WrenchStamped:
    msg = WrenchStamped()
    msg.header.stamp = to_stamp(stamp)
    msg.header.frame_id = frame_id
    force, torque = msg.wrench.force, msg.wrench.torque
    force.x, force.y, force.z = (float(v) for v in wrench[:3])
    torque.x, torque.y, torque.z = (float(v) for v in wrench[3:6])
    return msg


# --- named vectors (twin task state) ----------------------------------------------------


def task_state_msg(state: dict[str, np.ndarray]) -> Float32MultiArray:
    """Named vectors in one message: each dimension's label is a name, its size the vector length."""
    msg = Float32MultiArray()
    msg.layout.dim = [MultiArrayDimension(label=name, size=len(v), stride=len(v)) for name, v in state.items()]
    msg.data = [float(x) for v in state.values() for x in v]
    return msg


def task_state_from_msg(msg: Float32MultiArray) -> dict[str, np.ndarray]:
    out, offset = {}, 0
    for dim in msg.layout.dim:
        out[dim.label] = np.asarray(msg.data[offset : offset + dim.size], dtype=np.float32)
        offset += dim.size
    return out


# --- actions <-> velocities ------------------------------------------------------------


def action_to_velocity(action: np.ndarray, rig: RigConfig) -> np.ndarray:
    """Normalised action (without gripper) -> TCP velocity (6,), m/s and rad/s (`tether.actions`)."""
    return ActionScale.of_rig(rig).to_velocity(action)


def velocity_to_action(velocity: np.ndarray, gripper: float, rig: RigConfig) -> np.ndarray:
    """TCP velocity + gripper -> normalised action of the rig's layout, clipped to [-1, 1] (`tether.actions`)."""
    return ActionScale.of_rig(rig).to_action(velocity, gripper)


# --- binary records --------------------------------------------------------------------


def _bytes_msg(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> UInt8MultiArray:
    msg = UInt8MultiArray()
    msg.data = st_save(tensors, metadata={"version": RECORD_VERSION, **metadata})
    return msg


def _read_record(msg: UInt8MultiArray, kind: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    payload = bytes(msg.data)
    header_len = int.from_bytes(payload[:8], "little")
    metadata = json.loads(payload[8 : 8 + header_len]).get("__metadata__", {})
    if metadata.get("kind") != kind or metadata.get("version") != RECORD_VERSION:
        raise ValueError(
            f"{kind} record: got kind {metadata.get('kind')!r} version {metadata.get('version')!r}, "
            f"expected {kind!r} version {RECORD_VERSION!r}"
        )
    return st_load(payload), metadata


def transition_msg(
    transition: Transition, stamp: float, episode: int, step: int, outcome: str = ""
) -> UInt8MultiArray:
    """`outcome` is set on an episode's last transition (success, failure, timeout, rerecord)."""
    tensors: dict[str, np.ndarray] = {f"obs/{k}": np.ascontiguousarray(v) for k, v in transition.obs.items()}
    tensors.update({f"next_obs/{k}": np.ascontiguousarray(v) for k, v in transition.next_obs.items()})
    tensors["action"] = np.asarray(transition.action, dtype=np.float32)
    if transition.policy_action is not None:
        tensors["policy_action"] = np.asarray(transition.policy_action, dtype=np.float32)
    flags = {
        "reward": str(float(transition.reward)),
        "terminated": str(int(transition.terminated)),
        "truncated": str(int(transition.truncated)),
        "intervened": str(int(transition.intervened)),
    }
    header = {"kind": "transition", "stamp": repr(stamp), "episode": str(episode), "step": str(step), "outcome": outcome}
    return _bytes_msg(tensors, {**header, **flags})


def transition_from_msg(msg: UInt8MultiArray) -> tuple[Transition, dict[str, Any]]:
    """The transition and its header (stamp, episode, step, outcome)."""
    tensors, meta = _read_record(msg, "transition")
    obs = {k[len("obs/") :]: v for k, v in tensors.items() if k.startswith("obs/")}
    next_obs = {k[len("next_obs/") :]: v for k, v in tensors.items() if k.startswith("next_obs/")}
    transition = Transition(
        obs=obs,
        action=tensors["action"],
        reward=float(meta["reward"]),
        next_obs=next_obs,
        terminated=meta["terminated"] == "1",
        truncated=meta["truncated"] == "1",
        intervened=meta["intervened"] == "1",
        policy_action=tensors.get("policy_action"),
    )
    header = {"stamp": float(meta["stamp"]), "episode": int(meta["episode"]), "step": int(meta["step"])}
    return transition, {**header, "outcome": meta.get("outcome", "")}


def weights_msg(weights: dict[str, np.ndarray], version: int, config: dict[str, Any]) -> UInt8MultiArray:
    return _bytes_msg(weights, {"kind": "weights", "weights_version": str(version), "config": json.dumps(config)})


def weights_from_msg(msg: UInt8MultiArray) -> tuple[dict[str, np.ndarray], int, dict[str, Any]]:
    tensors, meta = _read_record(msg, "weights")
    return tensors, int(meta["weights_version"]), json.loads(meta["config"])
