"""Options several commands share: --task defaults to the task the rig names."""

from __future__ import annotations

import yaml

from tether.cli import run
from tether.config import resolve_rig_path


def test_a_command_without_task_runs_the_rigs_task_and_task_overrides_it(capfd, tmp_path) -> None:
    data = yaml.safe_load(resolve_rig_path("twin_panda").read_text())
    data["task"]["name"] = "peg_insert"
    rig = tmp_path / "peg_rig.yaml"
    rig.write_text(yaml.safe_dump(data))
    assert run(["sim", "check", "--rig", str(rig)]) == 0
    assert capfd.readouterr().out.startswith("task peg_insert on rig")
    assert run(["sim", "check", "--rig", str(rig), "--task", "pick_cube"]) == 0
    assert capfd.readouterr().out.startswith("task pick_cube on rig")
