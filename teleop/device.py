"""The teleop device contract: what a human (or the scripted operator) says each tick."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field

import numpy as np

from tether.types import Device

EPISODE_EVENTS = ("success", "failure", "reset", "rerecord", "stop")


@dataclass(frozen=True)
class TeleopCommand:
    """One reading of the device, in the normalised action space of tether.spaces."""

    motion: np.ndarray  # (6,) [dx, dy, dz, rx, ry, rz] in [-1, 1]
    gripper: float | None  # -1 open, +1 close, None = no gripper input this tick
    engaged: bool  # the human is acting now
    events: tuple[str, ...] = field(default_factory=tuple)  # episode events since the last poll


class TeleopDevice(Device):
    """An input device. Context manager: listening starts on enter and stops on exit."""

    @abstractmethod
    def poll(self) -> TeleopCommand:
        """The current command; events are returned once and then cleared."""
