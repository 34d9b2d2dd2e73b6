"""The viewer node streams a run to rerun: recorded through the real graph on the twin, read back by rerun's own
command-line reader."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tether.cli.robot import record_demos


def test_view_saves_every_camera_state_action_intervention_and_reward_of_the_run(
    tmp_path: Path, ros_domain, own_signal_handlers
) -> None:
    recording = tmp_path / "run.rrd"
    with own_signal_handlers():
        summary = record_demos("twin_panda", tmp_path / "demos.zarr", 1, seed=0, time_scale=3.0, progress=False,
                               view=str(recording))
    assert summary["episodes"] == 1
    rerun = Path(sys.executable).parent / "rerun"
    printed = subprocess.run([str(rerun), "rrd", "print", str(recording)], capture_output=True, text=True,
                             timeout=120, env={"RERUN_ANALYTICS": "false", "PATH": "/usr/bin:/bin"})
    assert printed.returncode == 0, printed.stderr[-2000:]
    entities = set(re.findall(r" - (/[\w/]+) - data columns", printed.stdout))
    assert {"/images/front", "/images/wrist", "/state/tcp_pose", "/action", "/intervened", "/reward"} <= entities
    rows = sum(int(n) for n in re.findall(r"with (\d+) rows \([^)]*\) - /action -", printed.stdout))
    assert rows >= 10  # every transition of the episode (a scripted pick takes tens of steps)
