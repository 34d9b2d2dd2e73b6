"""Errors a user can act on: a driver's missing library names the extra that installs it."""

from __future__ import annotations

import sys

import pytest

from tether.config import load_rig
from tether.errors import MissingExtra, needs_extra
from tether.robot_ws.drivers import make_camera
from tether.types import DeviceError


def test_a_driver_whose_library_is_missing_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyrealsense2 is installed here: `sys.modules` is patched so that importing it fails as on a machine
    without the [realsense] extra."""
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)
    monkeypatch.delitem(sys.modules, "tether.robot_ws.camera_realsense", raising=False)
    camera = next(c for c in load_rig("franka_realsense").cameras if c.backend == "realsense")
    with pytest.raises(MissingExtra, match=r"camera 'front' \(realsense\) needs the 'pyrealsense2' package.*"
                                           r"pip install 'tether\[realsense\]'") as raised:
        make_camera(camera)
    assert isinstance(raised.value, DeviceError) and "\n" not in str(raised.value)  # exit 1, one line


def test_a_missing_tether_module_is_a_bug_not_a_missing_extra() -> None:
    with pytest.raises(ModuleNotFoundError, match="tether.no_such_module"):
        with needs_extra("a driver", "franka"):
            import tether.no_such_module  # noqa: F401
