"""The one place a rig's teleop section becomes a human input device."""

from __future__ import annotations

from tether.config import TeleopConfig
from tether.errors import needs_extra
from tether.teleop.device import TeleopDevice


def make_teleop(config: TeleopConfig) -> TeleopDevice:
    """The keyboard or SpaceMouse of the rig (not yet connected: use it as a context manager).
    Device libraries load only when asked for, so a rig without a SpaceMouse never needs hidapi."""
    if config.device == "keyboard":
        with needs_extra("the keyboard teleop", "keyboard"):
            from tether.teleop.keyboard import KeyboardTeleop

        return KeyboardTeleop(config)
    if config.device == "spacemouse":
        with needs_extra("the SpaceMouse teleop", "spacemouse"):
            from tether.teleop.spacemouse import SpaceMouseTeleop

        return SpaceMouseTeleop(config)
    raise ValueError("teleop device 'scripted' is the twin's scripted operator, built by the graph next to the twin")
