"""Observation and action layout shared by the twin, the robot, the learners and the store.

Observations are flat dicts: `images/<camera>` uint8 (H, W, 3) and `state/<name>` float32
vectors. Actions are float32 in [-1, 1]: [dx, dy, dz] (+ [rx, ry, rz]) (+ gripper), where
gripper -1 opens and +1 closes (`tether.actions` says which parts a rig and task have). Both
twin and hardware build their spaces here, so the same
rig gives the same keys, shapes and dtypes.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from tether.actions import ActionScale
from tether.config import CameraConfig, RigConfig

IMAGES = "images/"
STATE = "state/"

TCP_POSE = STATE + "tcp_pose"  # xyz + quaternion xyzw, base frame
TCP_VEL = STATE + "tcp_vel"  # linear + angular velocity, base frame
GRIPPER = STATE + "gripper"  # opening in [0, 1], 1 = fully open
JOINTS = STATE + "joints"  # joint angles (rad)

PROPRIO_DIMS = {TCP_POSE: 7, TCP_VEL: 6, GRIPPER: 1, JOINTS: 7}

GRIPPER_OPEN = -1.0
GRIPPER_CLOSE = 1.0
GRIPPER_THRESHOLD = 0.5  # |gripper action| at or above this opens/closes; below it the gripper stays


def image_key(camera: str) -> str:
    return IMAGES + camera


def is_image_key(key: str) -> bool:
    return key.startswith(IMAGES)


def action_space(rig: RigConfig, task: str | None = None) -> gym.spaces.Box:
    """The normalised action box of `task` (default: the rig's) on a rig."""
    return gym.spaces.Box(-1.0, 1.0, shape=(ActionScale.of_rig(rig, task).dim,), dtype=np.float32)


def gripper_command(value: float) -> int:
    """The discrete meaning of a gripper action: +1 close, -1 open, 0 leave as it is."""
    if value >= GRIPPER_THRESHOLD:
        return 1
    if value <= -GRIPPER_THRESHOLD:
        return -1
    return 0


def observation_space(
    cameras: Sequence[CameraConfig], extra_state: dict[str, int] | None = None, *, gripper: bool = True
) -> gym.spaces.Dict:
    """Proprioception, one image per given camera, and any extra (e.g. privileged task) state.

    `gripper`: whether the gripper's opening is observed. A task without a gripper action (reach) does not see
    it: the twin holds its fingers at one opening, a real gripper sits wherever it was left, and a policy whose
    normaliser saw one constant value reads any other as far out of its training (reach deployed on franky-sim
    with the gripper at 0.5 instead of the twin's 1.0 drove away from every target)."""
    spaces: dict[str, gym.spaces.Space] = {
        key: gym.spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)
        for key, dim in PROPRIO_DIMS.items()
        if gripper or key != GRIPPER
    }
    for key, dim in (extra_state or {}).items():
        spaces[STATE + key] = gym.spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)
    for camera in cameras:
        width, height = camera.output_size
        spaces[image_key(camera.name)] = gym.spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8)
    return gym.spaces.Dict(spaces)
