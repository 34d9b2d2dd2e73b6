"""Keyboard teleop with real keys: the test starts its own Xvfb on a free display, and xdotool
types into it; pynput's X backend reads them. Nothing is mocked."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tether.config import TeleopConfig
from tether.robot_ws.interfaces import DeviceError
from tether.teleop.device import TeleopCommand
from tether.teleop.devices import make_teleop
from tether.teleop.keyboard import KeyboardTeleop


def free_display() -> int:
    for number in range(150, 400):
        if not Path(f"/tmp/.X{number}-lock").exists() and not Path(f"/tmp/.X11-unix/X{number}").exists():
            return number
    raise RuntimeError("no free X display number")


class Xvfb:
    def __init__(self) -> None:
        self.display = f":{free_display()}"
        self.process = subprocess.Popen(
            ["Xvfb", self.display, "-screen", "0", "320x240x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while subprocess.run(["xdotool", "getmouselocation"], env=self.env, capture_output=True).returncode != 0:
            assert self.process.poll() is None, "Xvfb exited"
            assert time.monotonic() < deadline, "Xvfb did not come up"
            time.sleep(0.05)

    @property
    def env(self) -> dict[str, str]:
        return os.environ | {"DISPLAY": self.display}

    def keys(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env=self.env, check=True)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def xvfb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Xvfb]:
    server = Xvfb()
    monkeypatch.setenv("DISPLAY", server.display)
    yield server
    server.stop()


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


def test_held_keys_move_and_engage_presses_act(xvfb: Xvfb):
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


def test_keymap_from_the_rig_and_held_engage(xvfb: Xvfb):
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
def test_losing_the_x_server_disengages_at_once(xvfb: Xvfb):
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
