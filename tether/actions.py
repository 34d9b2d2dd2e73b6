"""The one action convention, in one place: what a policy's action means on the wire and on disk.

An action is normalised, `[dx dy dz (rx ry rz) (g)]` in [-1, 1] (shared/DESIGN.md): the arm part at 1 moves the
TCP by the rig's `arm.action_scale` (metres, radians) in one control period, the gripper part closes (>= 0.5),
opens (<= -0.5) or leaves the gripper. Rotation is the rig's choice (`arm.rotation_actions`); the gripper part is
the task's: the tasks in `GRIPPERLESS_TASKS` have none. The four layouts have distinct lengths (3, 4, 6, 7), so
`gripper_part` reads any action without being told which. The same command appears in three forms:

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

GRIPPERLESS_TASKS = frozenset({"reach"})
"""Tasks whose action has no gripper part. Reach holds the fingers open (the twin's `Reach.gripper_hold`), so a
gripper dimension would only be noise a policy explores and its critic must learn to ignore. (peg_insert holds
its fingers too but keeps the dimension, so its recorded demos and trained checkpoints stay valid.)"""
GRIPPER_LAYOUTS = (4, 7)
"""Action lengths that end in a gripper command: translation (+ rotation) + gripper."""


@dataclass(frozen=True)
class ActionScale:
    """How far a unit action moves the TCP in one control period, and how long the period is."""

    translation: float
    """Metres per control period at |action| = 1."""
    rotation: float
    """Radians per control period at |action| = 1."""
    control_dt: float
    rotation_actions: bool
    """Whether actions carry [rx ry rz] after the translation."""
    gripper: bool = True
    """Whether actions end in a gripper command."""

    @classmethod
    def of_rig(cls, rig: RigConfig, task: str | None = None) -> ActionScale:
        """The layout a policy for `task` (default: the rig's) acts in on `rig`."""
        translation, rotation = rig.arm.action_scale
        gripper = (task or rig.task.name) not in GRIPPERLESS_TASKS
        return cls(translation, rotation, rig.control_dt, rig.arm.rotation_actions, gripper)

    @property
    def dim(self) -> int:
        """Length of an action vector: translation (+ rotation) (+ gripper)."""
        return 3 + (3 if self.rotation_actions else 0) + (1 if self.gripper else 0)

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
        """TCP twist + gripper command -> normalised action of this layout (the gripper dropped if it has none),
        clipped to [-1, 1]."""
        velocity = np.asarray(velocity, np.float64)
        parts = [velocity[:3] * self.control_dt / self.translation]
        if self.rotation_actions:
            parts.append(velocity[3:6] * self.control_dt / self.rotation)
        if self.gripper:
            parts.append([gripper])
        return np.clip(np.concatenate(parts), -1.0, 1.0).astype(np.float32)


def gripper_part(action: np.ndarray) -> float | None:
    """The gripper command of an action in any layout; None when the layout has no gripper."""
    return float(action[-1]) if len(action) in GRIPPER_LAYOUTS else None


def arm_part(action: np.ndarray) -> np.ndarray:
    """The translation (+ rotation) of an action in any layout, without its gripper command."""
    return action[:-1] if len(action) in GRIPPER_LAYOUTS else action
