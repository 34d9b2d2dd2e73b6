"""3Dconnexion SpaceMouse teleop through hidapi, reading the HID reports directly.

Report layout (little-endian int16 per axis, full scale about +-350):
  id 1: x, y, z (older devices) or all six axes x, y, z, rx, ry, rz (newer ones, 13 bytes)
  id 2: rx, ry, rz
  id 3: button bitmask (bit i = button i)
The HID frame is x right, y towards the user, z down; the rig's `spacemouse_axes` map it onto the
action axes. Each axis is normalised to [-1, 1], then the dead zone is removed (the rest is rescaled
so motion starts smoothly at its edge: a resting puck never drifts the arm), then the rig's
scales apply. A device lost mid-run disengages the human at once and is looked for again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import hid
import numpy as np

from tether.config import SPACEMOUSE_AXES, TeleopConfig
from tether.types import DeviceError
from tether.teleop.controls import Controls, scale_motion
from tether.teleop.device import TeleopCommand, TeleopDevice

log = logging.getLogger(__name__)

VENDOR_IDS = (0x046D, 0x256F)  # Logitech-era and current 3Dconnexion devices
FULL_SCALE = 350.0
READ_TIMEOUT_MS = 100
RETRY_S = 0.5


class HidDevice(Protocol):
    """The part of `hid.device` the driver uses (a recorded replay can stand in for it in tests)."""

    def read(self, size: int, timeout_ms: int = 0) -> list[int]: ...

    def close(self) -> None: ...


@dataclass
class RawState:
    """The device's axes in its own frame and units, and its buttons, as last reported."""

    axes: np.ndarray = field(default_factory=lambda: np.zeros(6))  # x, y, z, rx, ry, rz
    buttons: int = 0


def _int16s(data: bytes, count: int) -> np.ndarray:
    return np.frombuffer(bytes(data[1 : 1 + 2 * count]), dtype="<i2").astype(np.float64)


def parse_report(data: bytes, state: RawState) -> RawState:
    """Fold one HID report into the device state (unknown report ids are ignored)."""
    if not data:
        return state
    report = data[0]
    axes = state.axes.copy()
    buttons = state.buttons
    if report == 1 and len(data) >= 13:
        axes[:] = _int16s(data, 6)
    elif report == 1 and len(data) >= 7:
        axes[:3] = _int16s(data, 3)
    elif report == 2 and len(data) >= 7:
        axes[3:] = _int16s(data, 3)
    elif report == 3 and len(data) >= 2:
        buttons = int.from_bytes(bytes(data[1:]), "little")
    return RawState(axes=axes, buttons=buttons)


def motion_from_axes(axes: np.ndarray, config: TeleopConfig) -> np.ndarray:
    """(6,) action-axis motion in [-1, 1] from raw device axes: normalise, dead zone, map, scale."""
    normalised = np.clip(np.asarray(axes, np.float64) / FULL_SCALE, -1.0, 1.0)
    magnitude = np.abs(normalised)
    live = np.where(magnitude > config.deadzone, (magnitude - config.deadzone) / (1.0 - config.deadzone), 0.0)
    shaped = np.sign(normalised) * live
    motion = np.array(
        [(1.0 if spec[0] == "+" else -1.0) * shaped[SPACEMOUSE_AXES.index(spec[1:])] for spec in config.spacemouse_axes]
    )
    return scale_motion(motion, config.translation_scale, config.rotation_scale)


def open_first_spacemouse() -> hid.device:
    """The first 3Dconnexion HID device, opened; DeviceError if there is none or it cannot be opened."""
    found = [d for d in hid.enumerate() if d["vendor_id"] in VENDOR_IDS]
    if not found:
        raise DeviceError("spacemouse: no 3Dconnexion device found (plugged in? udev rule for /dev/hidraw*?)")
    info = found[0]
    device = hid.device()
    try:
        device.open_path(info["path"])
    except OSError as error:
        raise DeviceError(f"spacemouse {info.get('product_string') or info['path']!r}: cannot open: {error}") from None
    return device


class SpaceMouseTeleop(TeleopDevice):
    """The SpaceMouse as a teleop device; buttons act per the rig's `spacemouse_buttons`."""

    def __init__(self, config: TeleopConfig, open_device: Callable[[], HidDevice] = open_first_spacemouse) -> None:
        self.config = config
        self.controls = Controls()
        self._open_device = open_device
        self._device: HidDevice | None = None
        self._lock = threading.Lock()
        self._state = RawState()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def connect(self) -> None:
        self._device = self._open_device()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="spacemouse", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._drop()

    @property
    def connected(self) -> bool:
        return self._device is not None

    def _drop(self) -> None:
        if self._device is not None:
            self._device.close()
            self._device = None

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._device is None:
                try:
                    self._device = self._open_device()
                    self.controls.found()
                    log.info("spacemouse: reconnected")
                except DeviceError:
                    self._stop.wait(RETRY_S)
                    continue
            try:
                data = self._device.read(64, READ_TIMEOUT_MS)
            except (OSError, ValueError) as error:  # hidapi's errors for an unplugged device
                log.error("spacemouse: lost (%s); the human is disengaged", error)
                self.controls.lost()
                with self._lock:
                    self._state = RawState()
                self._drop()
                continue
            if data:
                self._handle(bytes(data))

    def _handle(self, data: bytes) -> None:
        with self._lock:
            before = self._state.buttons
            self._state = parse_report(data, self._state)
            pressed = self._state.buttons & ~before
        for index, action in enumerate(self.config.spacemouse_buttons):
            if pressed >> index & 1:
                self.controls.trigger(action)

    def poll(self) -> TeleopCommand:
        with self._lock:
            state = self._state
        motion = motion_from_axes(state.axes, self.config)
        held = {a for i, a in enumerate(self.config.spacemouse_buttons) if state.buttons >> i & 1}
        return self.controls.command(motion, bool(np.any(motion)) or "engage" in held)
