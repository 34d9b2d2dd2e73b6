"""`tether data ...`: look at, check, repair and convert episode stores."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import numpy as np
import typer

from tether.config import DEFAULT_RIG, ConfigError, load_rig

app = typer.Typer(help="Episode stores: info, verify, repair, pack (zip), convert (MCAP <-> zarr), view.", no_args_is_help=True)
log = logging.getLogger(__name__)

PathArgument = typer.Argument(..., help="Episode store directory (e.g. demos.zarr).")


def _one_line_errors(command: Callable[..., None]) -> Callable[..., None]:
    """Bad input ends the command with one line on stderr and exit code 2, not a traceback."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        from tether.datasets.store import StoreError

        try:
            command(*args, **kwargs)
        except (StoreError, ConfigError, FileNotFoundError) as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None

    return run


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
@_one_line_errors
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
@_one_line_errors
def verify(path: Path = PathArgument) -> None:
    """Decode every committed chunk and check the metadata; exit 1 on any problem."""
    from tether.datasets.verify import verify as verify_store

    report = verify_store(path)
    for note in report.notes:
        typer.echo(f"note: {note}")
    for problem in report.problems:
        typer.echo(f"problem: {problem}", err=True)
    if not report.ok:
        raise typer.Exit(1)
    typer.echo(f"{path}: ok, {report.episodes} episodes, {report.frames} frames")


@app.command()
@_one_line_errors
def repair(path: Path = PathArgument) -> None:
    """Truncate the uncommitted tail a crash left; committed episodes are untouched."""
    from tether.datasets.verify import repair as repair_store

    result = repair_store(path)
    typer.echo(
        f"{path}: dropped {result.dropped_frames} uncommitted frame(s), removed {result.removed_files} temporary file(s)"
    )


@app.command()
@_one_line_errors
def pack(
    path: Path = PathArgument,
    out: Path = typer.Argument(..., help="The zip file to write (e.g. demos.zip); it must not exist."),
) -> None:
    """Pack the committed episodes into one zip file for read-only sharing (tether and plain zarr read it)."""
    from tether.datasets.pack import pack as pack_store

    report = pack_store(path, out)
    typer.echo(f"{out}: {report.episodes} episodes, {report.frames} frames, {report.objects} objects, "
               f"{report.bytes / 1e6:.2f} MB")


@app.command()
@_one_line_errors
def convert(
    source: Path = typer.Argument(..., help="A .mcap bag or a .zarr store."),
    target: Path = typer.Argument(..., help="The other kind: a .zarr store (created or appended) or a .mcap file."),
    rig: str = typer.Option(DEFAULT_RIG, "--rig", help="Rig for namespace, control rate and action scale."),
    episode_source: str = typer.Option("teleop", "--source", help="Episode source recorded for a bag's episodes."),
    task: str = typer.Option("", "--task", help="Task name recorded for a bag's episodes."),
) -> None:
    """MCAP (ROS 2 bag) to zarr, or zarr to MCAP, by the file extensions."""
    from tether.datasets.mcap_io import export_mcap, import_mcap

    rig_config = load_rig(rig)
    if source.suffix == ".mcap" and target.suffix != ".mcap":
        count = import_mcap(source, target, rig=rig_config, source=episode_source, task=task)
        typer.echo(f"{target}: {count} episode(s) imported from {source}")
    elif source.suffix != ".mcap" and target.suffix == ".mcap":
        count = export_mcap(source, target, namespace=rig_config.namespace)
        typer.echo(f"{target}: {count} messages from {source}")
    else:
        raise FileNotFoundError(f"{source} -> {target}: exactly one side must be a .mcap file")


@app.command()
@_one_line_errors
def view(
    path: Path = PathArgument,
    episode: int = typer.Option(0, "--episode", "-e", help="Episode index."),
    out: Path = typer.Option(None, "--out", "-o", help="A .png contact sheet (default) or a .rrd rerun recording."),
    frames: int = typer.Option(8, "--frames", help="Frames per camera on a contact sheet."),
) -> None:
    """An episode as a PNG contact sheet (cameras as rows) or a rerun recording of every frame."""
    from tether.datasets.store import EpisodeStore, StoreError
    from tether.datasets.view import contact_sheet, rerun_recording

    store = EpisodeStore(path)
    out = out or Path(f"{path.name.removesuffix('.zarr')}_episode{episode}.png")
    if out.suffix == ".rrd":
        rerun_recording(store, episode, out)
    elif out.suffix == ".png":
        contact_sheet(store, episode, out, frames)
    else:
        raise StoreError(f"{out}: choose a .png or .rrd output")
    typer.echo(f"{out}: episode {episode} of {path}")
