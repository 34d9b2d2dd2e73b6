"""Checks of the options several commands share, run by typer as it parses, before a command builds anything."""

from __future__ import annotations

import typer

OBS_MODES = ("state", "pixels")


def known_task(value: str | None) -> str | None:
    """--task: one of the twin's tasks (None: the rig's own)."""
    from tether.sim2real.twin.tasks import TASKS

    if value is not None and value not in TASKS:
        raise typer.BadParameter(f"'{value}': unknown task (known: {', '.join(TASKS)})")
    return value


TaskOption = typer.Option(None, "--task", "-t", help="Twin task: pick_cube or peg_insert (default: the rig's task).",
                          callback=known_task)


def rig_task(task: str | None, rig: str) -> str:
    """--task, else the task the rig names."""
    from tether.config import load_rig

    return task or load_rig(rig).task.name


def known_obs(value: str) -> str:
    """--obs: what a policy observes."""
    if value not in OBS_MODES:
        raise typer.BadParameter(f"'{value}': must be {' or '.join(OBS_MODES)}")
    return value


ViewOption = typer.Option(None, "--view", help="Stream cameras, TCP, actions, interventions and rewards to rerun: "
                          "'spawn' opens a viewer, a .rrd path saves a recording.")


def viewed(nodes: tuple[str, ...], view: str | None) -> tuple[str, ...]:
    """The graph's nodes, with the viewer node when `--view` asks for one."""
    return (*nodes, "viewer") if view is not None else nodes
