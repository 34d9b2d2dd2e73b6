"""Checking a store end to end, and repairing what a crash leaves behind.

`verify` decodes every committed chunk and cross-checks the metadata; each problem is one line
naming the episode and the array. `repair` drops the uncommitted tail (frames past the last
committed episode, half-made metadata rows, temporary files of interrupted writes); it never
touches a committed episode.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tether.datasets.store import ENDS, EPISODES, FINAL, EpisodeStore, EpisodeWriter, StoreError
from tether.types import EPISODE_SOURCES

PARTIAL_SUFFIX = ".partial"  # zarr's LocalStore writes `<key>.<uuid>.partial`, then renames it


@dataclass
class VerifyReport:
    """Problems make a store unusable as it is; notes are harmless (e.g. a crash tail to repair)."""

    episodes: int = 0
    frames: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class RepairReport:
    dropped_frames: int
    removed_files: int


def _partial_files(path: Path) -> list[Path]:
    return [p for p in path.rglob(f"*{PARTIAL_SUFFIX}") if p.is_file()]


def verify(path: str | os.PathLike[str]) -> VerifyReport:
    """Decode every committed chunk and check the metadata agrees with itself."""
    try:
        store = EpisodeStore(path)
    except StoreError as error:
        return VerifyReport(problems=[str(error)])
    report = VerifyReport(episodes=store.n_episodes, frames=store.n_frames)
    stored = store.stored_bytes()
    _check_commit_point(store, report)
    _check_layout(store, stored, report)
    for info in store.episodes:
        where = f"episode {info.index} (frames {info.start}-{info.stop - 1})"
        if info.source not in EPISODE_SOURCES:
            report.problems.append(f"{where}: meta/episodes/source '{info.source}' is not a known source")
        for key in store.data_keys:
            try:
                store.load(key, info.start, info.stop)
            except Exception as error:  # any decode failure is the finding itself
                report.problems.append(f"{where}: data/{key} does not decode: {type(error).__name__}: {error}")
        timestamps = store.load("timestamp", info.start, info.stop)
        if np.any(np.diff(timestamps) < 0):
            report.notes.append(f"{where}: data/timestamp goes backwards")
    for array_path in store.array_paths():
        if array_path.startswith("meta/"):
            try:
                store.array(array_path)[: store.n_episodes]
            except Exception as error:
                report.problems.append(f"{array_path} does not decode: {type(error).__name__}: {error}")
    partial = [key for key in stored if key.endswith(PARTIAL_SUFFIX)]
    if partial:
        report.notes.append(f"{len(partial)} temporary file(s) of interrupted writes; repair removes them")
    return report


def _check_commit_point(store: EpisodeStore, report: VerifyReport) -> None:
    raw, count = store.raw_episode_ends, store.n_episodes
    beyond = raw[count:]
    if np.any(beyond != 0):
        before = raw[count - 1] if count else 0
        report.problems.append(
            f"{ENDS}: entry {count} ({raw[count]}) does not follow {before} within the frames on disk;"
            f" it and the {len(beyond) - 1} after it are ignored"
        )
    elif len(beyond):
        report.notes.append(f"{ENDS}: {len(beyond)} half-made entry from an interrupted commit; repair drops it")
    tail = max(store.array(f"data/{key}").shape[0] for key in store.data_keys) - store.n_frames
    if tail > 0:
        report.notes.append(f"uncommitted tail of up to {tail} frame(s) past the last episode; repair truncates it")


def _check_layout(store: EpisodeStore, stored: dict[str, int], report: VerifyReport) -> None:
    """Shapes and dtypes agree with the spec, and every storage file of the committed range exists."""
    expected = {f"data/{key}": spec for key, spec in store.spec.obs.items()}
    expected |= {f"{FINAL}/{key}": spec for key, spec in store.spec.obs.items()}
    for array_path in store.array_paths():
        array = store.array(array_path)
        if array_path in expected:
            shape, dtype = expected[array_path]
            if tuple(array.shape[1:]) != shape or array.dtype != np.dtype(dtype):
                report.problems.append(
                    f"{array_path}: {array.dtype} {list(array.shape[1:])} disagrees with the spec {dtype} {list(shape)}"
                )
        rows = store.n_episodes if array_path.startswith((FINAL, EPISODES, ENDS)) else store.n_frames
        unit = (array.shards or array.chunks)[0]
        for i in range(math.ceil(rows / unit)):
            key = array.metadata.encode_chunk_key((i, *([0] * (array.ndim - 1))))
            if f"{array_path}/{key}" not in stored:
                first = i * unit
                owner = (
                    f"episode {int(np.searchsorted(store.episode_ends, first, side='right'))}"
                    if array_path.startswith("data/")
                    else f"episodes {first}-{min(first + unit, rows) - 1}"
                )
                report.problems.append(f"{owner}: {array_path}: storage file {key} is missing")


def repair(path: str | os.PathLike[str]) -> RepairReport:
    """Truncate the uncommitted tail and delete temporary files; committed episodes stay as they are."""
    path = Path(path)
    with EpisodeWriter.open(path) as writer:  # takes the writer lock: no one else is appending
        dropped = writer.truncate_tail()
        partial = _partial_files(path)
        for file in partial:
            file.unlink()
    return RepairReport(dropped_frames=dropped, removed_files=len(partial))
