"""Who acts: the policy, or the human who takes over when it strays.

`TakeoverRule` is the scripted stand-in for a person watching the robot: each control step it
compares the policy's proposal with what the operator would do, and after `patience`
consecutive strays it takes over for `hold_steps` steps, as a person grabbing the
SpaceMouse for a moment. A policy strays when it moves elsewhere, sends the gripper the other
way, or hardly moves where the operator would move (a hovering or crawling policy otherwise runs
out the episode untouched). The rule counts control steps: step it once per
policy proposal, never on a faster clock. `StickyOverride` is what the actor applies to any human: the
human's command wins while they are engaged and for a short window after they let go, so
a brief pause in their input does not hand control back mid-correction.
"""

from __future__ import annotations

import numpy as np

from tether.actions import arm_part, gripper_part
from tether.spaces import gripper_command


class TakeoverRule:
    """Decides when a watching operator takes over from the policy."""

    def __init__(self, threshold: float = 1.0, patience: int = 3, hold_steps: int = 5,
                 decisive: float = 0.05, min_progress: float = 0.25) -> None:
        if threshold <= 0 or patience < 1 or hold_steps < 1 or decisive <= 0 or not 0 <= min_progress < 1:
            raise ValueError(
                f"TakeoverRule: need threshold > 0, patience >= 1, hold_steps >= 1, decisive > 0 and "
                f"0 <= min_progress < 1, got {threshold}, {patience}, {hold_steps}, {decisive}, {min_progress}"
            )
        self.threshold, self.patience, self.hold_steps = threshold, patience, hold_steps
        self.decisive, self.min_progress = decisive, min_progress
        """From this norm on (action units; above the operator's noise while it pauses) the operator means to
        move, and the policy must cover at least `min_progress` of that move along the operator's direction: a
        policy hovering a centimetre off the cube, where the operator's move is small, is caught too."""
        self.reset()

    def reset(self) -> None:
        self._strays = 0
        self._holding = 0

    def strays(self, proposal: np.ndarray, wanted: np.ndarray) -> bool:
        """The policy's motion differs too much from the operator's, stalls where the operator would move,
        or its gripper goes the other way."""
        motion, wanted_motion = np.asarray(arm_part(proposal), dtype=float), np.asarray(arm_part(wanted), dtype=float)
        motion_gap = float(np.linalg.norm(motion - wanted_motion))
        wanted_norm = float(np.linalg.norm(wanted_motion))
        stalled = (wanted_norm >= self.decisive
                   and float(motion @ wanted_motion) / wanted_norm < self.min_progress * wanted_norm)
        grippers = gripper_part(proposal), gripper_part(wanted)
        opposite_gripper = None not in grippers and gripper_command(grippers[0]) * gripper_command(grippers[1]) < 0
        return motion_gap > self.threshold or stalled or opposite_gripper

    def step(self, proposal: np.ndarray | None, wanted: np.ndarray) -> bool:
        """True while the operator acts this step. Without a proposal (no policy yet) the operator acts."""
        if proposal is None:
            return True
        if self._holding == 0:
            self._strays = self._strays + 1 if self.strays(proposal, wanted) else 0
            if self._strays >= self.patience:
                self._holding, self._strays = self.hold_steps, 0
        if self._holding == 0:
            return False
        self._holding -= 1
        return True


class StickyOverride:
    """The human wins while engaged and for `sticky_s` after letting go."""

    def __init__(self, sticky_s: float) -> None:
        self.sticky_s = sticky_s
        self._last_engaged: float | None = None

    def reset(self) -> None:
        self._last_engaged = None

    def human_acts(self, engaged: bool, now: float) -> bool:
        if engaged:
            self._last_engaged = now
            return True
        return self._last_engaged is not None and now - self._last_engaged <= self.sticky_s
