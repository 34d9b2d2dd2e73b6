"""The one action convention, in one place: what a policy's action means on the wire and on disk.

An action is normalised, `[dx dy dz (rx ry rz) g]` in [-1, 1] (shared/DESIGN.md): the arm part at 1 moves the
TCP by the rig's `arm.action_scale` (metres, radians) in one control period, the gripper part closes (>= 0.5),
opens (<= -0.5) or leaves the gripper. The same command appears in three forms:

    normalised action   a                        policies, the episode store, learner transitions
    twist on arm/cmd    a * action_scale / dt    the live graph and ROS 2 bags (m/s, rad/s; TwistStamped)
    per-step move       a * action_scale         what the arm node moves in one period of dt

`ActionScale` converts between them; the actor, teleop node, `RobotEnv`, MCAP import / export and anything
else that crosses that boundary go through it, so a bag's twist and a store's action cannot disagree by a
factor of the control rate.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from tether.config import RigConfig


@dataclass(frozen=True)
class ActionScale:
    """How far a unit action moves the TCP in one control period, and how long the period is."""

    translation: float
    """Metres per control period at |action| = 1."""
    rotation: float
    """Radians per control period at |action| = 1."""
    control_dt: float
    rotation_actions: bool
    """Whether actions carry [rx ry rz] between the translation and the gripper (7-dim) or not (4-dim)."""

    @classmethod
    def of_rig(cls, rig: RigConfig) -> ActionScale:
        translation, rotation = rig.arm.action_scale
        return cls(translation, rotation, rig.control_dt, rig.arm.rotation_actions)

    def to_step(self, action: np.ndarray) -> np.ndarray:
        """Normalised action -> the TCP move of one control period (6,): metres, then a rotation vector in radians
        (zero without rotation actions)."""
        action = np.asarray(action, np.float64)
        step = np.zeros(6)
        step[:3] = action[:3] * self.translation
        if self.rotation_actions:
            step[3:] = action[3:6] * self.rotation
        return step

    def to_velocity(self, action: np.ndarray) -> np.ndarray:
        """Normalised action (the gripper, if there, is ignored) -> TCP twist (6,), m/s and rad/s."""
        return self.to_step(action) / self.control_dt

    def to_action(self, velocity: np.ndarray, gripper: float) -> np.ndarray:
        """TCP twist + gripper command -> normalised action of this layout, clipped to [-1, 1]."""
        velocity = np.asarray(velocity, np.float64)
        parts = [velocity[:3] * self.control_dt / self.translation]
        if self.rotation_actions:
            parts.append(velocity[3:6] * self.control_dt / self.rotation)
        parts.append([gripper])
        return np.clip(np.concatenate(parts), -1.0, 1.0).astype(np.float32)
