"""Checking a store end to end, and repairing what a crash leaves behind.

`verify` trusts nothing the store says about itself: it checks the attrs' types, every array's dtype,
row shape and length against the schema and the episode index, and reads every stored chunk of the
committed range; each problem is one line naming the episode and the array, and the report says what
`repair` can recover. `repair` drops the uncommitted tail (frames past the last committed episode,
half-made metadata rows, temporary files of interrupted writes) and never touches a committed episode,
unless asked to drop damaged ones: then it keeps the episodes before the first damaged one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tether.datasets.integrity import Damage, repair_hint
from tether.datasets.store import ENDS, EPISODES, EpisodeStore, EpisodeWriter, StoreDamage, StoreError
from tether.types import EPISODE_SOURCES

PARTIAL_SUFFIX = ".partial"  # zarr's LocalStore writes `<key>.<uuid>.partial`, then renames it


@dataclass
class VerifyReport:
    """Problems make a store unusable as it is; notes are harmless (e.g. a crash tail to repair)."""

    episodes: int = 0
    frames: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    repair: str = ""  # what `tether data repair` can recover, when there are problems
    first_damaged: int | None = None  # the first episode a problem makes unusable

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class RepairReport:
    dropped_frames: int
    removed_files: int
    kept_episodes: int


def _partial_files(path: Path) -> list[Path]:
    return [p for p in path.rglob(f"*{PARTIAL_SUFFIX}") if p.is_file()]


def verify(path: str | os.PathLike[str], *, progress: bool = False) -> VerifyReport:
    """Check attrs, every array's metadata and length against the episode index and the schema, and read
    every stored object of the committed range (one chunk or shard at a time, so memory stays bounded)."""
    try:
        store = EpisodeStore(path, strict=False)
    except StoreDamage as error:
        return VerifyReport(problems=[d.what for d in error.damage], repair=repair_hint(error.damage))
    except StoreError as error:
        return VerifyReport(problems=[str(error)])
    damage = list(store.damage)
    report = VerifyReport(episodes=store.n_episodes, frames=store.n_frames)
    _check_commit_point(store, report)
    arrays = store.array_paths()
    for array_path in tqdm(arrays, desc="verify", unit="array", disable=None if progress else True):
        rows = store.n_episodes if array_path.startswith("meta/") else store.n_frames
        damage += _read_every_unit(store, array_path, rows)
    for info in store.episodes:
        where = f"episode {info.index} (frames {info.start}-{info.stop - 1})"
        if info.source not in EPISODE_SOURCES:
            damage.append(Damage(f"{where}: {EPISODES}/source '{info.source}' is not a known source", info.index))
    timestamps = _readable(store, "timestamp")
    for info in store.episodes if timestamps is not None else ():
        if np.any(np.diff(timestamps[info.start : info.stop]) < 0):
            report.notes.append(f"episode {info.index} (frames {info.start}-{info.stop - 1}): data/timestamp goes backwards")
    partial = _partial_files(store.path) if not store.packed else []
    if partial:
        report.notes.append(f"{len(partial)} temporary file(s) of interrupted writes; repair removes them")
    report.problems = [d.what for d in damage]
    report.repair = repair_hint(damage) if damage else ""
    if damage and all(d.episode is not None for d in damage):
        report.first_damaged = min(d.episode for d in damage if d.episode is not None)
    return report


def _read_every_unit(store: EpisodeStore, array_path: str, rows: int) -> list[Damage]:
    """Every stored object holding rows [0, rows) of an array, read and decoded one at a time."""
    array = store.array(array_path)
    unit = (array.shards or array.chunks)[0]
    damage = []
    for first in range(0, rows, unit):
        try:
            store.read_rows(array_path, first, min(first + unit, rows))
        except StoreDamage as error:
            damage += error.damage
    return damage


def _readable(store: EpisodeStore, key: str) -> np.ndarray | None:
    try:
        return store.load(key)
    except StoreDamage:
        return None  # already reported, unit by unit


def _check_commit_point(store: EpisodeStore, report: VerifyReport) -> None:
    beyond = store.raw_episode_ends[store.n_episodes :]
    if len(beyond) and not beyond.any():
        report.notes.append(f"{ENDS}: {len(beyond)} half-made entry from an interrupted commit; repair drops it")
    tail = max(store.array(f"data/{key}").shape[0] for key in store.data_keys) - store.n_frames
    if tail > 0:
        report.notes.append(f"uncommitted tail of up to {tail} frame(s) past the last episode; repair truncates it")


def repair(path: str | os.PathLike[str], *, drop_damaged: bool = False) -> RepairReport:
    """Truncate the uncommitted tail and delete temporary files; committed episodes stay as they are.
    With `drop_damaged`, a damaged store is cut back to the episodes before its first damaged one (damage
    to the store as a whole, such as its attrs or array metadata, is refused: there is nothing to cut)."""
    path = Path(path)
    report = verify(path)
    if not report.ok and not report.repair:  # not an episode store at all
        raise StoreError(report.problems[0])
    if not report.ok and (not drop_damaged or report.first_damaged is None):
        raise StoreError(f"{path}: damaged: {report.problems[0]}; {report.repair}")
    with EpisodeWriter.open(path, strict=False) as writer:  # takes the writer lock: no one else is appending
        dropped = writer.truncate_tail(report.first_damaged)
        partial = _partial_files(path)
        for file in partial:
            file.unlink()
    return RepairReport(dropped_frames=dropped, removed_files=len(partial), kept_episodes=writer.n_episodes)
