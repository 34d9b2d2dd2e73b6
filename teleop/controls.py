"""What every human input device shares: turning presses and axes into a `TeleopCommand`.

A device reports two things: the motion it wants now (held keys, SpaceMouse axes) and discrete
actions (gripper toggles, episode events, an engage button). `Controls` keeps the engagement
rule in one place: the human is engaged while moving, holding engage or pressing a gripper
button, and not at all once the device is lost. The rig's `sticky_s` (keeping control briefly
after letting go) is applied by the actor's `StickyOverride`, not here, so it is applied once.
"""

from __future__ import annotations

import threading

import numpy as np

from tether.spaces import GRIPPER_CLOSE, GRIPPER_OPEN
from tether.teleop.device import EPISODE_EVENTS, TeleopCommand

GRIPPER_ACTIONS = ("gripper_toggle", "gripper_open", "gripper_close")


class Controls:
    """Thread-safe state between a device's input thread and the node's `poll`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False  # the gripper state the toggle flips
        self._gripper: float | None = None
        self._events: list[str] = []
        self._lost = False

    def trigger(self, action: str) -> None:
        """A discrete action (key press, button press)."""
        with self._lock:
            if action in EPISODE_EVENTS:
                self._events.append(action)
            elif action in GRIPPER_ACTIONS:
                self._closed = {"gripper_toggle": not self._closed, "gripper_close": True, "gripper_open": False}[action]
                self._gripper = GRIPPER_CLOSE if self._closed else GRIPPER_OPEN
            elif action != "engage":
                raise ValueError(f"unknown teleop action '{action}'")

    def lost(self) -> None:
        """The device went away: the human is disengaged and the arm gets no motion from it."""
        with self._lock:
            self._lost = True

    def found(self) -> None:
        with self._lock:
            self._lost = False

    def command(self, motion: np.ndarray, active: bool) -> TeleopCommand:
        """The command for this tick from the device's motion (6,) and whether input is held now."""
        with self._lock:
            if self._lost:
                motion, active = np.zeros(6), False
            gripper, self._gripper = self._gripper, None
            events, self._events = tuple(self._events), []
            engaged = active or gripper is not None
        return TeleopCommand(motion=np.asarray(motion, np.float64), gripper=gripper, engaged=engaged, events=events)


def scale_motion(motion: np.ndarray, translation_scale: float, rotation_scale: float) -> np.ndarray:
    """Apply the rig's translation / rotation scales to a (6,) motion and keep it in [-1, 1]."""
    scales = np.repeat([translation_scale, rotation_scale], 3)
    return np.clip(np.asarray(motion, np.float64) * scales, -1.0, 1.0)
