"""The one rotation convention: quaternions xyzw (ROS, scipy) everywhere, wxyz only inside MuJoCo calls."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def wxyz_to_xyzw(quat: np.ndarray) -> np.ndarray:
    return np.asarray(quat)[..., [1, 2, 3, 0]]


def xyzw_to_wxyz(quat: np.ndarray) -> np.ndarray:
    return np.asarray(quat)[..., [3, 0, 1, 2]]


def lookat_quat_xyzw(pos: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Orientation of a camera at `pos` looking at `target` (camera looks along its -z, y up).

    `up` is a hint for the image's up direction; it must not be parallel to the line of sight.
    """
    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-6:
        raise ValueError(f"camera up hint {list(up)} is parallel to its line of sight")
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    matrix = np.stack([right, true_up, -forward], axis=1)
    return Rotation.from_matrix(matrix).as_quat()


def apply_rotvec(quat_xyzw: np.ndarray, rotvec: np.ndarray) -> np.ndarray:
    """Rotate an orientation by a rotation vector given in the base frame (not Euler angles)."""
    return (Rotation.from_rotvec(rotvec) * Rotation.from_quat(quat_xyzw)).as_quat()


def quat_xyzw_to_matrix(quat_xyzw: np.ndarray) -> np.ndarray:
    return Rotation.from_quat(quat_xyzw).as_matrix()


CV_TO_MUJOCO = np.diag([1.0, -1.0, -1.0])
"""Camera axes: OpenCV (x right, y down, z forward) <-> MuJoCo (y up, looks along -z); its own inverse."""


def homogeneous(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """A 4x4 pose from a rotation matrix and a translation."""
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = np.ravel(translation)
    return out
