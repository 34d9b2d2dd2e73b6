"""`tether data ...`: look at, check, repair and convert episode stores."""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import typer

from tether.config import DEFAULT_RIG, load_rig
from tether.errors import BadInput

app = typer.Typer(
    help="Episode stores: info, verify, repair, pack (zip), convert (MCAP <-> zarr, LeRobot <-> zarr), view.",
    no_args_is_help=True,
)
log = logging.getLogger(__name__)

PathArgument = typer.Argument(..., help="Episode store directory (e.g. demos.zarr).")
ForceOption = typer.Option(False, "--force", help="Replace the output if it exists (it is replaced only once the new one is whole).")


@contextmanager
def replacing(target: Path, force: bool) -> Iterator[Path]:
    """A temporary path beside `target` (same suffix) for a command to write its output to; it replaces
    `target` only once written whole. An existing `target` is refused without `force`, before anything is
    written or deleted."""
    if target.exists() and not force:
        raise BadInput(f"{target}: already exists; pass --force to replace it")
    if not target.parent.is_dir():
        raise BadInput(f"{target}: its folder {target.parent} does not exist")
    temporary = target.with_name(f".{target.stem}.writing-{uuid.uuid4().hex[:8]}{target.suffix}")
    try:
        yield temporary
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(temporary, target)
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        temporary.unlink(missing_ok=True)


def store_info(path: Path) -> dict[str, Any]:
    """What `tether data info` shows, as JSON-ready data."""
    from tether.datasets.store import EpisodeStore

    store = EpisodeStore(path)
    stored = store.stored_bytes()
    total = sum(stored.values())
    known = [e.success for e in store.episodes if e.success is not None]
    lengths = [e.length for e in store.episodes]
    arrays = {}
    for key in store.data_keys:
        array = store.array(f"data/{key}")
        arrays[key] = {"shape": [store.n_frames, *array.shape[1:]], "dtype": str(array.dtype),
                       "bytes": sum(n for name, n in stored.items() if name.startswith(f"data/{key}/"))}  # fmt: skip
    return {
        "path": str(path),
        "episodes": store.n_episodes,
        "frames": store.n_frames,
        "fps": store.fps,
        "hours": store.n_frames / store.fps / 3600,
        "episode_length": {"min": min(lengths, default=0), "mean": float(np.mean(lengths)) if lengths else 0.0,
                           "max": max(lengths, default=0)},  # fmt: skip
        "success_rate": float(np.mean(known)) if known else None,
        "sources": dict(Counter(e.source for e in store.episodes)),
        "tasks": dict(Counter(e.task for e in store.episodes)),
        "intervened_fraction": float(store.load("intervened").mean()) if store.n_frames else 0.0,
        "image_codec": store.image_codec,
        "rig": (store.rig or {}).get("name"),
        "bytes": total,
        "bytes_per_frame": total / store.n_frames if store.n_frames else None,
        "arrays": arrays,
    }


@app.command()
def info(
    path: Path = PathArgument,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Episodes, frames, keys, sizes, success rate and sources of a store."""
    summary = store_info(path)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    rate = "unknown" if summary["success_rate"] is None else f"{summary['success_rate']:.1%}"
    lines = [
        f"{summary['path']}: {summary['episodes']} episodes, {summary['frames']} frames at {summary['fps']:g} fps"
        f" ({summary['hours'] * 60:.1f} min), rig {summary['rig']}",
        f"  episode length min/mean/max: {summary['episode_length']['min']} / "
        f"{summary['episode_length']['mean']:.1f} / {summary['episode_length']['max']}",
        f"  success rate: {rate}; sources: {summary['sources']}; intervened steps: {summary['intervened_fraction']:.1%}",
        f"  size: {summary['bytes'] / 1e6:.2f} MB ({(summary['bytes_per_frame'] or 0) / 1e3:.1f} kB/frame);"
        f" images: {summary['image_codec']['name']}",
    ]
    for key, array in summary["arrays"].items():
        lines.append(f"  data/{key:<24} {array['dtype']:<8} {str(array['shape']):<22} {array['bytes'] / 1e6:9.3f} MB")
    typer.echo("\n".join(lines))


@app.command()
def verify(path: Path = PathArgument) -> None:
    """Decode every committed chunk and check the metadata; exit 1 on any problem."""
    from tether.datasets.verify import verify as verify_store

    report = verify_store(path, progress=True)
    for note in report.notes:
        typer.echo(f"note: {note}")
    for problem in report.problems:
        typer.echo(f"problem: {problem}", err=True)
    if not report.ok:
        if report.repair:
            typer.echo(f"repair: {report.repair}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{path}: ok, {report.episodes} episodes, {report.frames} frames")


@app.command()
def repair(
    path: Path = PathArgument,
    drop_damaged: bool = typer.Option(
        False, "--drop-damaged", help="Cut a damaged store back to the episodes before its first damaged one."
    ),
) -> None:
    """Truncate the uncommitted tail a crash left; committed episodes are untouched unless --drop-damaged."""
    from tether.datasets.verify import repair as repair_store

    result = repair_store(path, drop_damaged=drop_damaged)
    typer.echo(
        f"{path}: dropped {result.dropped_frames} frame(s), removed {result.removed_files} temporary file(s);"
        f" {result.kept_episodes} episode(s) kept"
    )


@app.command()
def pack(
    path: Path = PathArgument,
    out: Path = typer.Argument(..., help="The zip file to write (e.g. demos.zip)."),
    force: bool = ForceOption,
) -> None:
    """Pack the committed episodes into one zip file for read-only sharing (tether and plain zarr read it)."""
    from tether.datasets.pack import pack as pack_store

    with replacing(out, force) as temporary:
        report = pack_store(path, temporary)
    typer.echo(f"{out}: {report.episodes} episodes, {report.frames} frames, {report.objects} objects, "
               f"{report.bytes / 1e6:.2f} MB")


CONVERT_TARGETS = ("auto", "diffusion-policy", "lerobot")
CONVERT_SOURCES = ("auto", "lerobot")


def export_layout(source: Path, target: Path, to: str, force: bool) -> None:
    """A store into another codebase's layout (`--to diffusion-policy` or `--to lerobot`)."""
    from tether.datasets.diffusion_policy_io import export_diffusion_policy
    from tether.datasets.lerobot_io import export_lerobot

    export, layout = {
        "diffusion-policy": (export_diffusion_policy, "the Diffusion Policy ReplayBuffer layout"),
        "lerobot": (export_lerobot, "the LeRobotDataset v3.0 format"),
    }[to]
    with replacing(target, force) as temporary:
        count = export(source, temporary, progress=True)
    typer.echo(f"{target}: {count} episode(s) from {source} in {layout}")


@app.command()
def convert(
    source: Path = typer.Argument(..., help="A .mcap bag, a .zarr store, a LeRobot folder (--from)."),
    target: Path = typer.Argument(..., help="The other kind: a .zarr store, a .mcap file, a folder (--to)."),
    rig: str = typer.Option(DEFAULT_RIG, "--rig", help="Rig for namespace, control rate and action scale."),
    episode_source: str = typer.Option("teleop", "--source", help="Episode source recorded for a bag's "
                                       "episodes (and a LeRobot dataset's, unless tether made it)."),
    task: str = typer.Option("", "--task", help="Task name recorded for a bag's episodes."),
    append: bool = typer.Option(False, "--append", help="MCAP to zarr: append to an existing store (same spec)."),
    to: str = typer.Option("auto", "--to", help="auto: MCAP <-> zarr by the file extensions; diffusion-policy: a "
                           "store into the Diffusion Policy codebase's ReplayBuffer layout (zarr 2); "
                           "lerobot: a store into a LeRobotDataset v3.0 folder (images as PNG)."),
    from_: str = typer.Option("auto", "--from", help="auto: by the file extensions; lerobot: SOURCE is a "
                              "LeRobotDataset v3.0 folder, imported into a new .zarr store."),
    force: bool = ForceOption,
) -> None:
    """MCAP (ROS 2 bag) to zarr, or zarr to MCAP, by the file extensions; a store into another codebase's
    layout (--to); or a LeRobot dataset into a store (--from lerobot)."""
    from tether.datasets.mcap_io import export_mcap, import_mcap

    if to not in CONVERT_TARGETS:
        raise BadInput(f"--to {to}: must be one of {', '.join(CONVERT_TARGETS)}")
    if from_ not in CONVERT_SOURCES:
        raise BadInput(f"--from {from_}: must be one of {', '.join(CONVERT_SOURCES)}")
    if from_ == "lerobot":
        from tether.datasets.lerobot_io import import_lerobot

        if to != "auto" or append:
            raise BadInput("--from lerobot: imports into a new .zarr store; not with --to or --append")
        with replacing(target, force) as temporary:
            count = import_lerobot(source, temporary, source=episode_source, progress=True)
        typer.echo(f"{target}: {count} episode(s) imported from the LeRobot dataset {source}")
        return
    if to != "auto":
        export_layout(source, target, to, force)
        return
    if (source.suffix == ".mcap") == (target.suffix == ".mcap"):
        raise BadInput(f"{source} -> {target}: exactly one side must be a .mcap file")
    if append and (force or target.suffix == ".mcap"):
        raise BadInput("--append: only for a bag into an existing .zarr store, and not with --force")
    rig_config = load_rig(rig)
    if target.suffix == ".mcap":
        with replacing(target, force) as temporary:
            count = export_mcap(source, temporary, namespace=rig_config.namespace, progress=True)
        typer.echo(f"{target}: {count} messages from {source}")
        return
    if append:
        count = import_mcap(source, target, rig=rig_config, source=episode_source, task=task, progress=True)
    else:
        with replacing(target, force) as temporary:
            count = import_mcap(source, temporary, rig=rig_config, source=episode_source, task=task,
                                    progress=True)
    typer.echo(f"{target}: {count} episode(s) imported from {source}")


@app.command()
def view(
    path: Path = PathArgument,
    episode: int = typer.Option(0, "--episode", "-e", help="Episode index."),
    out: Path = typer.Option(None, "--out", "-o", help="A .png contact sheet (default) or a .rrd rerun recording."),
    frames: int = typer.Option(8, "--frames", help="Frames per camera on a contact sheet."),
    force: bool = ForceOption,
) -> None:
    """An episode as a PNG contact sheet (cameras as rows) or a rerun recording of every frame."""
    from tether.datasets.store import EpisodeStore, StoreError
    from tether.datasets.view import contact_sheet, rerun_recording

    store = EpisodeStore(path)
    out = out or Path(f"{path.name.removesuffix('.zarr')}_episode{episode}.png")
    if out.suffix not in (".png", ".rrd"):
        raise StoreError(f"{out}: choose a .png or .rrd output")
    with replacing(out, force) as temporary:
        if out.suffix == ".rrd":
            rerun_recording(store, episode, temporary)
        else:
            contact_sheet(store, episode, temporary, frames)
    typer.echo(f"{out}: episode {episode} of {path}")
