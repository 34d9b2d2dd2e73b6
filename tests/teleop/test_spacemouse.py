"""SpaceMouse report parsing on byte sequences in the device's HID format, and the device loop
on a replay of them. No SpaceMouse is plugged in here, so `ReplayDevice` stands in for the USB
device (the only mock); the missing-device error comes from the real hidapi enumeration."""

from __future__ import annotations

import queue
import struct
import threading
import time

import numpy as np
import pytest

from tether.config import TeleopConfig
from tether.robot_ws.interfaces import DeviceError
from tether.teleop.devices import make_teleop
from tether.teleop.spacemouse import RawState, SpaceMouseTeleop, motion_from_axes, parse_report


def report(report_id: int, *values: int) -> bytes:
    return bytes([report_id]) + struct.pack(f"<{len(values)}h", *values)


def buttons(mask: int) -> bytes:
    return bytes([3, mask & 0xFF, mask >> 8])


# Byte sequences as a SpaceNavigator-style device sends them: translation and rotation in separate
# reports, then a button press and release; and one 13-byte six-axis report of newer devices.
PUSH_AWAY_AND_TWIST = [report(1, 0, -350, 0), report(2, 0, 0, 175), buttons(0b01), buttons(0), report(1, 0, 0, 0), report(2, 0, 0, 0)]
SIX_AXIS = report(1, 10, -20, 350, -350, 0, 5)


def test_reports_fold_into_the_device_state():
    state = RawState()
    for data in PUSH_AWAY_AND_TWIST[:2]:
        state = parse_report(data, state)
    np.testing.assert_array_equal(state.axes, [0, -350, 0, 0, 0, 175])
    assert parse_report(buttons(0b10), state).buttons == 2
    np.testing.assert_array_equal(parse_report(SIX_AXIS, state).axes, [10, -20, 350, -350, 0, 5])
    unknown = parse_report(bytes([7, 1, 2]), state)  # unknown report ids change nothing
    np.testing.assert_array_equal(unknown.axes, state.axes)
    assert unknown.buttons == state.buttons


def test_dead_zone_scaling_and_axis_mapping():
    config = TeleopConfig(device="spacemouse", deadzone=0.1, translation_scale=0.5, rotation_scale=1.0)
    np.testing.assert_array_equal(motion_from_axes(np.array([20, -30, 34, 0, 15, -34]), config), np.zeros(6))  # resting hand
    motion = motion_from_axes(np.array([0, -350, 0, 0, 0, 175]), config)
    # default map: dx = +y(HID), dy = +x, dz = -z, rx = +ry, ry = +rx, rz = -rz
    np.testing.assert_allclose(motion, [-0.5, 0, 0, 0, 0, -(0.5 - 0.1) / 0.9])
    just_past = motion_from_axes(np.array([0.11 * 350, 0, 0, 0, 0, 0]), config)
    assert 0 < just_past[1] < 0.01  # motion starts smoothly at the dead zone's edge
    flipped = TeleopConfig(device="spacemouse", deadzone=0.0, spacemouse_axes=("-x", "+y", "+z", "+rx", "+ry", "+rz"))
    np.testing.assert_allclose(motion_from_axes(np.array([700, 0, -175, 0, 0, 0]), flipped), [-1, 0, -0.5, 0, 0, 0])


class ReplayDevice:
    """Plays recorded reports back like hidapi's `read`, as the test hands them over; `None`
    in the sequence is the cable being pulled."""

    def __init__(self, reports: list[bytes | None] = ()) -> None:
        self.queue: queue.Queue[bytes | None] = queue.Queue()
        self.send(reports)

    def send(self, reports: list[bytes | None]) -> None:
        for item in reports:
            self.queue.put(item)

    def read(self, size: int, timeout_ms: int = 0) -> list[int]:
        try:
            item = self.queue.get(timeout=timeout_ms / 1000)
        except queue.Empty:
            return []
        if item is None:
            raise OSError("read error")
        return list(item)

    def close(self) -> None:
        pass


def poll_until(device: SpaceMouseTeleop, condition, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while True:
        command = device.poll()
        if condition(command):
            return command
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_device_engages_on_motion_toggles_the_gripper_and_disengages_when_unplugged():
    config = TeleopConfig(device="spacemouse", deadzone=0.1)
    first, second = ReplayDevice(), ReplayDevice()
    plugged = threading.Event()
    plugged.set()
    opened: list[ReplayDevice] = []

    def open_device() -> ReplayDevice:
        if not plugged.is_set():
            raise DeviceError("spacemouse: no 3Dconnexion device found")
        opened.append(first if not opened else second)
        return opened[-1]

    with SpaceMouseTeleop(config, open_device=open_device) as device:
        first.send([report(1, 5, -8, 3), report(2, 2, 0, -4)])  # a hand resting on the puck
        poll_until(device, lambda c: first.queue.empty())
        resting = device.poll()
        assert not resting.engaged and not resting.motion.any() and resting.gripper is None
        first.send([report(1, 0, -350, 0)])  # push away from the user
        moving = poll_until(device, lambda c: c.engaged)
        np.testing.assert_allclose(moving.motion, [-1, 0, 0, 0, 0, 0])
        grips = []
        for _ in range(2):  # button 0 toggles on each press, not on its release
            first.send([buttons(0b01), buttons(0)])
            grips.append(poll_until(device, lambda c: c.gripper is not None).gripper)
            poll_until(device, lambda c: first.queue.empty())
        assert grips == [1.0, -1.0] and device.poll().gripper is None
        plugged.clear()
        first.send([None])  # cable out while pushing
        poll_until(device, lambda c: not device.connected)
        lost = device.poll()
        assert not lost.engaged and not lost.motion.any()  # the human is out at once
        plugged.set()  # plugged back in: found again; pushing right (HID +x) is +dy
        second.send([report(1, 350, 0, 0)])
        back = poll_until(device, lambda c: c.engaged)
        np.testing.assert_allclose(back.motion, [0, 1, 0, 0, 0, 0])
        assert opened == [first, second]


def test_missing_spacemouse_is_one_line():
    with pytest.raises(DeviceError, match=r"^spacemouse: no 3Dconnexion device found \([^\n]*\)$"):
        make_teleop(TeleopConfig(device="spacemouse")).connect()
