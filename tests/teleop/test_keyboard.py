"""Keyboard teleop with real keys: the `xvfb` fixture (tests/conftest.py) starts its own Xvfb on a
free display, and xdotool types into it; pynput's X backend reads them. Nothing is mocked."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tether.config import TeleopConfig
from tether.robot_ws.interfaces import DeviceError
from tether.teleop.device import TeleopCommand
from tether.teleop.devices import make_teleop
from tether.teleop.keyboard import KeyboardTeleop


def poll_until(device: KeyboardTeleop, condition, timeout_s: float = 10.0) -> TeleopCommand:
    deadline = time.monotonic() + timeout_s
    events: list[str] = []
    while True:
        command = device.poll()
        events.extend(command.events)
        if condition(command, events):
            return command
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_held_keys_move_and_engage_presses_act(xvfb):
    config = TeleopConfig(device="keyboard", translation_scale=0.5)
    with make_teleop(config) as device:
        assert not device.poll().engaged
        xvfb.keys("keydown", "w", "keydown", "d")  # +x and -y held together
        moving = poll_until(device, lambda c, e: c.engaged and c.motion[1] != 0)
        np.testing.assert_allclose(moving.motion, [0.5, -0.5, 0, 0, 0, 0])
        xvfb.keys("keyup", "d")
        poll_until(device, lambda c, e: c.motion[1] == 0 and c.motion[0] == 0.5)
        xvfb.keys("keyup", "w")
        idle = poll_until(device, lambda c, e: not c.engaged)
        assert not idle.motion.any()

        xvfb.keys("key", "space")
        assert poll_until(device, lambda c, e: c.gripper is not None).gripper == 1.0  # toggle: close
        xvfb.keys("key", "space")
        assert poll_until(device, lambda c, e: c.gripper is not None).gripper == -1.0  # and open again

        xvfb.keys("key", "Return", "BackSpace", "n", "b", "Escape")
        poll_until(device, lambda c, e: e == ["success", "failure", "reset", "rerecord", "stop"])
        assert device.poll().events == ()  # events are handed out once


def test_keymap_from_the_rig_and_held_engage(xvfb):
    config = TeleopConfig(device="keyboard", keymap={"up": "+z", "j": "-rz", "e": "engage", "g": "gripper_close"})
    with make_teleop(config) as device:
        xvfb.keys("keydown", "Up", "keydown", "j")
        moving = poll_until(device, lambda c, e: c.motion[2] != 0 and c.motion[5] != 0)
        np.testing.assert_allclose(moving.motion, [0, 0, 1, 0, 0, -1])
        xvfb.keys("keyup", "Up", "keyup", "j", "keydown", "e")
        held = poll_until(device, lambda c, e: not c.motion.any())
        assert held.engaged  # engage held without motion: the human holds the arm still
        xvfb.keys("keyup", "e", "key", "g")
        assert poll_until(device, lambda c, e: c.gripper is not None).gripper == 1.0
        assert not poll_until(device, lambda c, e: True).engaged


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # pynput's thread dies with X
def test_losing_the_x_server_disengages_at_once(xvfb):
    with make_teleop(TeleopConfig(device="keyboard")) as device:
        xvfb.keys("keydown", "w")
        poll_until(device, lambda c, e: c.engaged)
        xvfb.stop()  # the key is still "held" when the display dies
        lost = poll_until(device, lambda c, e: not device.connected)
        assert not lost.engaged and not lost.motion.any()


def test_no_display_is_one_line(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(DeviceError, match=r"^keyboard: no X display \(DISPLAY is not set\)"):
        make_teleop(TeleopConfig(device="keyboard")).connect()


def test_unknown_key_names_are_refused():
    with pytest.raises(ValueError, match="unknown key names \\['spacebar'\\]"):
        make_teleop(TeleopConfig(device="keyboard", keymap={"spacebar": "gripper_toggle"}))
