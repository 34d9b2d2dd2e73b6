"""Command limits shared by the arm node and the twin, so both clip the same way.

A command is an end-effector velocity. It is checked for NaN/inf, and it moves the setpoint
sent to the arm by at most one control period's worth of the rig's speed limits (linear and
angular) from the previous setpoint, inside the workspace box. Setpoints accumulate from the
previous setpoint (so tracking lag does not turn into drift), but never lead the measured pose
by more than `MAX_LEAD_STEPS` speed-limited steps, so an arm blocked by contact does not wind
up a growing force. A step may be longer than the one before it by the rig's acceleration limit
only, so an arm at rest is not jolted to full speed in one period.

Speed is limited over time, not per message: `SetpointFilter` applies at most one command per
control period (`DUE_FRACTION` of it, for the jitter of a command stream at the control rate,
periods counted on a schedule so that early setpoints do not add up);
commands that arrive faster are merged, the latest one winning, never summed or replayed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from tether.config import Box, RigConfig
from tether.transforms import apply_rotvec

MAX_LEAD_STEPS = 2.0
DUE_FRACTION = 0.95
"""A command is applied once this fraction of a control period has passed since the last setpoint:
a 10 Hz stream with a few ms of jitter moves every tick, and no stream moves faster than 1/0.95 of the limit."""


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
    """Where the TCP may go this control period: at most one speed-limited step from the previous
    target, held within reach of the measured pose, inside the box (when the previous target is)."""
    max_step = max_speed * dt
    previous = np.asarray(previous, float)
    target = previous + limit_norm(check_finite(delta, "translation"), max_step)
    measured = np.asarray(measured, float)
    target = clip_to_box(measured + limit_norm(target - measured, MAX_LEAD_STEPS * max_step), box)
    if np.linalg.norm(target - previous) > max_step:  # pulling back towards the measured pose is a step too
        target = previous + limit_norm(target - previous, max_step)
    return target


def rotation_target(quat_xyzw: np.ndarray, rotvec: np.ndarray, max_angle: float) -> np.ndarray:
    """Orientation after a rotation-vector step (base frame), the step limited to `max_angle` rad."""
    return apply_rotvec(np.asarray(quat_xyzw, float), limit_norm(check_finite(rotvec, "rotation"), max_angle))


def _turn_toward(origin: Rotation, goal: Rotation, max_angle: float) -> Rotation:
    """`goal`, or the orientation `max_angle` rad from `origin` on the way to it."""
    return Rotation.from_rotvec(limit_norm((goal * origin.inv()).as_rotvec(), max_angle)) * origin


def orientation_target(
    measured: np.ndarray, previous: np.ndarray, goal: np.ndarray, max_angle: float
) -> np.ndarray:
    """The rotational twin of `translation_target`: towards `goal`, at most `max_angle` from the
    previous target and `MAX_LEAD_STEPS` of it from the measured orientation (quaternions xyzw)."""
    previous_r = Rotation.from_quat(check_finite(previous, "orientation"))
    measured_r = Rotation.from_quat(check_finite(measured, "orientation"))
    target = _turn_toward(previous_r, Rotation.from_quat(check_finite(goal, "orientation")), max_angle)
    target = _turn_toward(measured_r, target, MAX_LEAD_STEPS * max_angle)
    return _turn_toward(previous_r, target, max_angle).as_quat()


@dataclass(frozen=True)
class MotionLimits:
    """What the setpoint may do in one control period."""

    workspace: Box
    max_linear_speed: float  # m/s
    max_angular_speed: float  # rad/s
    max_linear_accel: float  # m/s^2, how fast the setpoint's speed may grow
    dt: float  # control period, s
    fixed_quat: tuple[float, float, float, float] | None
    """Orientation (xyzw) the TCP keeps when commands carry no rotation; None: rotations are applied."""

    @classmethod
    def of(cls, rig: RigConfig) -> MotionLimits:
        arm = rig.arm
        fixed = None if arm.rotation_actions else tuple(arm.tcp_down_quat)
        return cls(arm.workspace, arm.max_linear_speed, arm.max_angular_speed, arm.max_linear_accel, rig.control_dt,
                   fixed)

    @property
    def max_step(self) -> float:
        return self.max_linear_speed * self.dt

    @property
    def max_angle(self) -> float:
        return self.max_angular_speed * self.dt

    @property
    def max_step_growth(self) -> float:
        """How much longer (m) a setpoint's step may be than the step before it."""
        return self.max_linear_accel * self.dt * self.dt


@dataclass(frozen=True)
class Setpoint:
    """A TCP pose in the base frame: position (m) and orientation (xyzw)."""

    position: np.ndarray
    quat_xyzw: np.ndarray

    @classmethod
    def of_pose(cls, pose: np.ndarray) -> Setpoint:
        """From a 7-vector xyz + quaternion xyzw (a measured `tcp_pose`)."""
        pose = np.asarray(pose, float)
        return cls(pose[:3].copy(), pose[3:7].copy())


def next_setpoint(
    previous: Setpoint, measured: Setpoint, velocity: np.ndarray, limits: MotionLimits, last_step: float = 0.0,
    elapsed: float = np.inf,
) -> Setpoint:
    """One control period of `velocity` ([vx, vy, vz, wx, wy, wz], base frame) from `previous`,
    within the speed limits over the `elapsed` time since `previous` (at most a period), the workspace
    box and reach of the `measured` pose; the step at most `limits.max_step_growth` longer than
    `last_step` (m, the previous setpoint's step; 0 from rest)."""
    velocity = check_finite(velocity, "velocity")
    position = translation_target(
        measured.position, previous.position, velocity[:3] * limits.dt, limits.workspace,
        limits.max_linear_speed, min(elapsed, limits.dt),
    )
    # A shorter step along the same segment stays in the box and within reach, as both ends are.
    position = previous.position + limit_norm(position - previous.position, last_step + limits.max_step_growth)
    if limits.fixed_quat is not None:
        goal = np.asarray(limits.fixed_quat, float)
    else:
        goal = rotation_target(previous.quat_xyzw, velocity[3:6] * limits.dt, limits.max_angle)
    quat = orientation_target(measured.quat_xyzw, previous.quat_xyzw, goal, limits.max_angle)
    return Setpoint(position, quat)


class SetpointFilter:
    """The one path from commands to setpoints: latest-wins merging and one period's step per setpoint.

    `offer` stores a command as the single pending one (replacing any not yet applied); `apply`
    turns the pending command into the next setpoint once `due` (a control period, within
    `DUE_FRACTION`, after the last one). `reset` forgets the setpoint and any pending command
    (hold, e-stop, home): the next command starts from the measured pose. Not thread-safe:
    its owner serialises the calls.
    """

    def __init__(self, limits: MotionLimits) -> None:
        self.limits = limits
        self.setpoint: Setpoint | None = None
        self.pending: np.ndarray | None = None
        self.applied_at = -np.inf
        """When the period of the last setpoint began (on the schedule of the periods before it)."""
        self.previous_at = -np.inf
        """When the last setpoint was made."""
        self.merged = 0
        """Commands replaced by a later one before they were applied."""
        self.last_step = 0.0
        """Length (m) of the last setpoint's step: the next may be `max_step_growth` longer."""

    def offer(self, velocity: np.ndarray) -> None:
        """Hold `velocity` as the next command to apply; raises UnsafeCommand if it is not finite."""
        velocity = check_finite(velocity, "velocity")
        if velocity.shape != (6,):
            raise UnsafeCommand(f"velocity rejected: expected 6 values, got shape {velocity.shape}")
        if self.pending is not None:
            self.merged += 1
        self.pending = velocity

    def due(self, now: float) -> bool:
        return self.pending is not None and now - self.applied_at >= DUE_FRACTION * self.limits.dt

    def apply(self, measured: Setpoint, now: float) -> Setpoint:
        """The next setpoint from the pending command (which it consumes); call only when `due`."""
        if not self.due(now):
            raise RuntimeError("no command is due")
        previous = self.setpoint if self.setpoint is not None else measured
        # A setpoint let through early (DUE_FRACTION) moves no faster than the limit over the time it had.
        elapsed = now - self.previous_at
        self.setpoint = next_setpoint(previous, measured, self.pending, self.limits, self.last_step, elapsed)
        self.previous_at = now
        self.last_step = float(np.linalg.norm(self.setpoint.position - previous.position))
        self.pending = None
        # The period starts on schedule, not at `now`: a setpoint let through early shortens the next
        # period's wait by nothing, so a stream faster than the control rate averages exactly one per period.
        self.applied_at = max(now, self.applied_at + self.limits.dt)
        return self.setpoint

    def reset(self) -> None:
        """Forget the setpoint and the pending command; the period of the last setpoint still runs."""
        self.setpoint = None
        self.pending = None
        self.last_step = 0.0
