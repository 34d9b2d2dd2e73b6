"""Keyboard teleop through pynput: held keys move the arm, single presses act.

The key map comes from the rig (`teleop.keymap`): motion keys (`+x` .. `-rz`) move along their
axis while held, and the human is engaged while any of them (or an `engage` key) is held; the
other keys fire once per press (key auto-repeat is ignored): gripper toggle / open / close and
the episode events. pynput needs an X server (`DISPLAY`); a lost X connection disengages at once.
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np

from tether.config import MOTION_AXES, TeleopConfig
from tether.errors import needs_extra
from tether.types import DeviceError
from tether.teleop.controls import Controls, scale_motion
from tether.teleop.device import TeleopCommand, TeleopDevice

log = logging.getLogger(__name__)

SPECIAL_KEYS = frozenset(
    "alt alt_l alt_r alt_gr backspace caps_lock cmd cmd_l cmd_r ctrl ctrl_l ctrl_r delete down end enter esc "
    "home left page_down page_up right shift shift_l shift_r space tab up insert menu pause".split()
    + [f"f{i}" for i in range(1, 21)]
)


def check_keymap(keymap: dict[str, str]) -> None:
    """Every key is one character or a pynput special key name (`space`, `enter`, `f1`, ...)."""
    bad = [key for key in keymap if not (len(key) == 1 or key in SPECIAL_KEYS)]
    if bad:
        raise ValueError(f"keyboard keymap: unknown key names {bad} (use one character or one of {sorted(SPECIAL_KEYS)})")


def key_name(key: object) -> str | None:
    """pynput's Key / KeyCode as the keymap spells it: 'w', 'space', 'enter'."""
    name = getattr(key, "name", None)
    if name is not None:
        return name
    char = getattr(key, "char", None)
    return char.lower() if char else None


def held_motion(actions: set[str]) -> np.ndarray:
    """(6,) motion from the motion actions held now: +1 / -1 per axis, opposite keys cancel."""
    motion = np.zeros(6)
    for index, axis in enumerate(MOTION_AXES):
        motion[index] = ("+" + axis in actions) - ("-" + axis in actions)
    return motion


def _unblock_record_loop(listener: object) -> None:
    """pynput 1.8.2's `stop()` sends the X RECORD disable request on the connection that is
    blocked in the record loop, where it is never flushed, so the listener thread never ends.
    Sending it on the listener's other connection as well (what pynput 1.7 did) ends it at once."""
    display, context = getattr(listener, "_display_stop", None), getattr(listener, "_context", None)
    if display is not None and context is not None:
        display.record_disable_context(context)
        display.flush()


class KeyboardTeleop(TeleopDevice):
    """The keyboard as a teleop device (see the module docstring)."""

    def __init__(self, config: TeleopConfig) -> None:
        check_keymap(config.keymap)
        self.config = config
        self.controls = Controls()
        self._lock = threading.Lock()
        self._held: set[str] = set()  # key names held now
        self._listener = None

    def connect(self) -> None:
        if not os.environ.get("DISPLAY"):
            raise DeviceError("keyboard: no X display (DISPLAY is not set); pynput reads keys from an X server")
        try:
            with needs_extra("the keyboard teleop", "keyboard"):
                from pynput import keyboard
        except ImportError as error:  # pynput picks its backend at import and fails without a usable one
            raise DeviceError(f"keyboard: pynput cannot start: {error}") from None
        self._listener = keyboard.Listener(on_press=self._on_press, on_release=self._on_release)
        self._listener.start()
        self._listener.wait()
        if not self._listener.is_alive():
            raise DeviceError(f"keyboard: cannot listen on X display {os.environ['DISPLAY']}")
        self.controls.found()

    def close(self) -> None:
        if self._listener is not None:
            if self._listener.is_alive():
                try:
                    self._listener.stop()
                    _unblock_record_loop(self._listener)
                except Exception as error:  # noqa: BLE001 - Xlib raises its own errors once the X server is gone
                    log.debug("keyboard: stopping a listener whose display is gone: %s", error)
            self._listener.join(timeout=5.0)
            self._listener = None

    @property
    def connected(self) -> bool:
        return self._listener is not None and self._listener.is_alive()

    def _on_press(self, key: object) -> None:
        name = key_name(key)
        with self._lock:
            if name is None or name in self._held:
                return  # auto-repeat of a held key
            self._held.add(name)
        action = self.config.keymap.get(name)
        if action is not None and action[0] not in "+-":
            self.controls.trigger(action)

    def _on_release(self, key: object) -> None:
        with self._lock:
            self._held.discard(key_name(key))

    def poll(self) -> TeleopCommand:
        if not self.connected:
            self.controls.lost()
            if self._listener is not None:
                log.error("keyboard: lost the X connection; the human is disengaged")
        with self._lock:
            actions = {self.config.keymap[k] for k in self._held if k in self.config.keymap}
        motion = held_motion(actions)
        active = bool(np.any(motion)) or "engage" in actions
        return self.controls.command(scale_motion(motion, self.config.translation_scale, self.config.rotation_scale), active)
