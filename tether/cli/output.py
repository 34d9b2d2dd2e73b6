"""What commands write besides their console output, and the one rule for writing it: an output that
exists is never overwritten unless the user said so (--force), or the command continues it (--resume)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

ForceOption = typer.Option(False, "--force", help="Overwrite outputs that exist already.")


def claim_output(
    path: Path | None, option: str, *, force: bool, resuming: bool = False, remedy: str = "give --force to overwrite it"
) -> None:
    """Refuse, before anything is written, to write `path` (a file, or a folder the command fills) if it exists.

    An empty folder is free; so is one the command continues (`resuming`: it holds the run's resume point).
    `force` allows overwriting; nothing is deleted here either way. `remedy` is what the refusal tells the user to do.
    """
    if path is None or not (path.exists() or path.is_symlink()) or resuming:
        return
    if path.is_dir() and not any(path.iterdir()):
        return
    if not force:
        what = "a folder that is not empty" if path.is_dir() else "a file"
        raise typer.BadParameter(f"{path}: exists already ({what}); {remedy}", param_hint=option)


def write_json(path: Path | None, data: dict[str, Any]) -> None:
    """A command's `--json` report (nothing when no path was given); its folder is made if missing."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
