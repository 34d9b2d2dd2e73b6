"""The root of the `tether` command line: its version and the rigs it ships."""

from __future__ import annotations

import importlib.metadata

from tether.cli import run
from tether.config import rig_names


def test_version_prints_the_installed_version_and_exits_0(capfd) -> None:
    assert run(["--version"]) == 0
    assert capfd.readouterr().out.strip() == f"tether {importlib.metadata.version('tether')}"


def test_rigs_lists_every_shipped_rig_with_its_arm_cameras_and_task(capfd) -> None:
    assert run(["rigs"]) == 0
    lines = capfd.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == list(rig_names())
    franka = next(line for line in lines if line.startswith("franka_realsense:"))
    assert "arm franka" in franka and "front (realsense)" in franka and "task pick_cube" in franka
