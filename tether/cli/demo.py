"""`tether demo`: the main job on the embedded default (the twin with the scripted operator)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tether.cli.sim import run_expert
from tether.config import DEFAULT_RIG


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for the summary JSON."),
    episodes: int = typer.Option(20, "--episodes", "-n", min=1, help="Episodes per task."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Run the scripted operator on every twin task and write a summary.

    Human-in-the-loop training through the ROS 2 graph becomes the demo once the graph exists;
    until then the demo shows the twin and its operator working end to end.
    """
    from tether.sim2real.twin.tasks import TASKS

    out.mkdir(parents=True, exist_ok=True)
    summary = {task: run_expert(task, DEFAULT_RIG, episodes, seed) for task in TASKS}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    for task, result in summary.items():
        typer.echo(f"{task}: scripted operator success {result['success_rate']:.2f}, "
                   f"mean length {result['mean_length']:.1f} steps")
    typer.echo(f"summary written to {out / 'summary.json'}")
