"""Command limits shared by the arm node and the twin, so both clip the same way.

A command is an end-effector delta. It is checked for NaN/inf, its step length is limited
by the rig's speed limits over one control period, and the target is clipped to the
workspace box. Targets accumulate from the previous target (so tracking lag does not turn
into drift), but never lead the measured pose by more than `MAX_LEAD_STEPS` speed-limited
steps, so an arm blocked by contact does not wind up a growing force.
"""

from __future__ import annotations

import numpy as np

from tether.config import Box
from tether.transforms import apply_rotvec


MAX_LEAD_STEPS = 2.0


class UnsafeCommand(ValueError):
    """A command that must not reach the arm (the arm holds instead)."""


def check_finite(command: np.ndarray, what: str = "command") -> np.ndarray:
    command = np.asarray(command, dtype=np.float64)
    if not np.all(np.isfinite(command)):
        raise UnsafeCommand(f"{what} rejected: contains NaN or inf ({command.tolist()})")
    return command


def limit_norm(vector: np.ndarray, max_norm: float) -> np.ndarray:
    """Scale `vector` down (keeping its direction) so its length is at most `max_norm`."""
    norm = float(np.linalg.norm(vector))
    return vector if norm <= max_norm else vector * (max_norm / norm)


def clip_to_box(position: np.ndarray, box: Box) -> np.ndarray:
    return np.clip(position, box.low, box.high)


def translation_target(
    measured: np.ndarray, previous: np.ndarray, delta: np.ndarray, box: Box, max_speed: float, dt: float
) -> np.ndarray:
    """Where the TCP may go this control period: a speed-limited step from the previous target,
    held within reach of the measured pose, inside the box."""
    max_step = max_speed * dt
    target = np.asarray(previous, float) + limit_norm(check_finite(delta, "translation"), max_step)
    measured = np.asarray(measured, float)
    target = measured + limit_norm(target - measured, MAX_LEAD_STEPS * max_step)
    return clip_to_box(target, box)


def rotation_target(quat_xyzw: np.ndarray, rotvec: np.ndarray, max_angle: float) -> np.ndarray:
    """Orientation after a rotation-vector step (base frame), the step limited to `max_angle` rad."""
    return apply_rotvec(np.asarray(quat_xyzw, float), limit_norm(check_finite(rotvec, "rotation"), max_angle))
