"""Fixtures shared across the test tree."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


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


@pytest.fixture
def ros_domain(monkeypatch: pytest.MonkeyPatch) -> int:
    """A ROS domain of the test's own (loopback only), so graphs of parallel runs never cross-talk."""
    domain = random.Random(os.getpid() * 1000 + random.randrange(1000)).randrange(1, 100)
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return domain


@pytest.fixture
def plain():
    """CLI output as one line of words: typer's error panel without its frame, and wrapped lines joined (where
    a panel wraps depends on the length of the paths it shows)."""
    return lambda output: " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


@pytest.fixture
def own_signal_handlers():
    """A context manager for running a command that installs SIGINT / SIGTERM handlers (Ctrl-C stops its graph):
    pytest gets its own back afterwards."""

    @contextmanager
    def restored() -> Iterator[None]:
        handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)

    return restored
