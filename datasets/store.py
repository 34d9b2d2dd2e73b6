"""The zarr v3 episode store: append-only, crash-safe, readable by plain zarr.

Layout (one directory store, see shared/DESIGN.md):

    store.zarr/zarr.json            attrs: format, schema_version, obs_spec, action_dim, fps,
                                    image_codec, rig (config snapshot), user attrs
    data/images/<camera>            uint8 (N, H, W, 3), frames in ~512 KiB chunks (lossless; lossy: one per chunk)
    data/state/<name>               float32 (N, d)
    data/action, data/policy_action float32 (N, A); policy_action is NaN where no policy proposed
    data/reward                     float32 (N,)
    data/terminated, truncated, intervened   bool (N,)
    data/timestamp                  float64 (N,) acquisition time of each observation
    meta/final_obs/<obs key>        (E, ...) the true observation after each episode's last action
    meta/episodes/<column>          (E,) source, success (1/0/-1 unknown), task, seed (-1 none),
                                    start_time, notes, has_final_obs
    meta/episode_ends               int64 (E,) exclusive end frame of each episode: the commit point

Writing:

    with EpisodeWriter.create(path, obs_space, action_dim, fps=10, rig=rig) as writer:
        writer.begin_episode(source="scripted", task="pick_cube", seed=3)
        writer.add_step(obs, action, reward, terminated, truncated, intervened,
                        policy_action=None, timestamp=None)         # or add_steps(...) for a batch
        index = writer.end_episode(success=True, final_obs=last_obs)   # or discard_episode()
    EpisodeWriter.open(path)                          # append; open(path, obs_space, action_dim) checks the spec
    writer.write_episode(episode_arrays, source="sim")   # a whole tether.datasets.episode.EpisodeArrays

Frames reach disk a chunk at a time (lossless images: up to 16 frames in ~512 KiB, a larger frame alone;
lossy images: a shard of one-frame chunks, ~4 MiB; numbers: `chunk_steps` rows), encoded on background
threads, so memory stays bounded and the caller's control loop is not held up by compression.

Reading: `EpisodeStore(path)` sees committed episodes only; `refresh()` picks up new commits. The path
may also be a zip file made by `tether.datasets.pack.pack` (read-only sharing; writers refuse it).

Why it never loses a committed episode: every file write is atomic (zarr's LocalStore writes a
temporary file and renames it), frames are appended past the committed end (a chunk or shard
file shared with committed rows is replaced whole, those rows unchanged), and an episode becomes visible only when `meta/episode_ends` gains its entry,
which is written after all of its frames and metadata. Entries of `episode_ends` beyond the
array's shape are kept zero, so an entry made visible by a resize before its value lands reads
as 0 and is ignored. Frames past the last end are an uncommitted tail that readers ignore and
`tether.datasets.verify.repair` truncates. (Atomic against process death such as SIGKILL; the
store does not fsync, so power loss can still lose recent writes.)
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import zarr
from zarr.storage import LocalStore, ZipStore

from tether.config import RigConfig
from tether.datasets.codecs import IMAGE_CODECS, ImageCodec, image_encoding, number_compressors
from tether.datasets.episode import EpisodeArrays
from tether.datasets.integrity import (
    Damage,
    array_problems,
    attr_problems,
    missing_inner_chunks,
    repair_hint,
    storage_units,
)
from tether.errors import BadInput
from tether.spaces import is_image_key
from tether.types import EPISODE_SOURCES, Observation

log = logging.getLogger(__name__)

FORMAT = "tether.episodes"
SCHEMA_VERSION = 1
LOCK_FILE = ".writer.lock"
# Lossless image frames: as many as fit in CHUNK_BYTES share a chunk (up to MAX_CHUNK_FRAMES; a frame over it,
# e.g. 640x480, is a chunk of its own). zarr's cost per chunk (~0.5 ms) then spreads over several frames, where one
# frame per chunk cost more than encoding it, and a random frame still reads in ~1 ms (benchmarks/dataset_io.py).
CHUNK_BYTES = 512 << 10
MAX_CHUNK_FRAMES = 16
# Lossy image frames are one per chunk (a JPEG each), gathered ~4 MiB per shard file; below MIN_SHARD_FRAMES
# frames per shard each is its own file: zarr's shard assembly then costs more than it saves in file count.
SHARD_BYTES = 4 << 20
MAX_SHARD_FRAMES = 64
MIN_SHARD_FRAMES = 8
GROW_AHEAD_FRAMES = 64  # arrays grow at least this far past the cursor (each resize is a metadata write)
WRITE_THREADS = 8  # background writes: one per array in flight, plus the per-episode rows at a commit
# Write chunks even when all-fill (zarr's default skips them): then a missing chunk file in the
# committed range is damage that verify can name. zarr keeps this per open array, not on disk.
WRITE_CONFIG = {"write_empty_chunks": True}
BATCH_FRAMES = 8192  # frames read or written per array access when moving many episodes at once

ENDS = "meta/episode_ends"
FINAL = "meta/final_obs"
EPISODES = "meta/episodes"

STEP_ARRAYS: dict[str, str] = {  # per-step arrays besides observations: name -> dtype
    "action": "float32",
    "policy_action": "float32",
    "reward": "float32",
    "terminated": "bool",
    "truncated": "bool",
    "intervened": "bool",
    "timestamp": "float64",
}
EPISODE_COLUMNS: dict[str, tuple[str, Any]] = {  # per-episode metadata: name -> (dtype, value when unknown)
    "source": ("str", ""),
    "success": ("int8", -1),
    "task": ("str", ""),
    "seed": ("int64", -1),
    "start_time": ("float64", float("nan")),
    "notes": ("str", ""),
    "has_final_obs": ("bool", False),
}


class StoreError(BadInput):
    """A store that cannot be used as asked; the message is one line naming the store and the reason."""


class StoreDamage(StoreError):
    """A store whose data or metadata is damaged: one line naming the first finding and what
    `tether data repair` can recover; `damage` holds every finding."""

    def __init__(self, path: Path, damage: list[Damage]) -> None:
        self.damage = damage
        more = f" (and {len(damage) - 1} more)" if len(damage) > 1 else ""
        super().__init__(f"{path}: damaged: {damage[0].what}{more}; {repair_hint(damage)}")


class StoreWriteError(OSError):
    """Writing to a store failed (a full disk, a lost mount): the episode being written is dropped, the
    committed ones stay as they were. The message is one line."""


@dataclass(frozen=True)
class StoreSpec:
    """What every step of a store holds: observation keys with shape and dtype, and the action size."""

    obs: dict[str, tuple[tuple[int, ...], str]]
    action_dim: int

    @classmethod
    def from_space(cls, observation_space: gym.spaces.Dict, action_dim: int) -> StoreSpec:
        if not isinstance(observation_space, gym.spaces.Dict) or not observation_space.spaces:
            raise StoreError("observation_space: expected a non-empty gymnasium.spaces.Dict")
        obs = {}
        for key, space in observation_space.spaces.items():
            shape, dtype = tuple(int(s) for s in space.shape), np.dtype(space.dtype).name
            if is_image_key(key) and (dtype != "uint8" or len(shape) != 3 or shape[2] != 3):
                raise StoreError(f"observation '{key}': images must be uint8 (H, W, 3), got {dtype} {shape}")
            if not is_image_key(key) and dtype != "float32":
                raise StoreError(f"observation '{key}': state must be float32, got {dtype}")
            obs[key] = (shape, dtype)
        if action_dim < 1:
            raise StoreError(f"action_dim: must be at least 1, got {action_dim}")
        return cls(obs=obs, action_dim=int(action_dim))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoreSpec:
        obs = {key: (tuple(v["shape"]), v["dtype"]) for key, v in data["obs_spec"].items()}
        return cls(obs=obs, action_dim=int(data["action_dim"]))

    def to_json(self) -> dict[str, Any]:
        return {
            "obs_spec": {key: {"shape": list(shape), "dtype": dtype} for key, (shape, dtype) in self.obs.items()},
            "action_dim": self.action_dim,
        }

    @property
    def observation_space(self) -> gym.spaces.Dict:
        spaces = {}
        for key, (shape, dtype) in self.obs.items():
            low, high = (0, 255) if dtype == "uint8" else (-np.inf, np.inf)
            spaces[key] = gym.spaces.Box(low, high, shape=shape, dtype=np.dtype(dtype))
        return gym.spaces.Dict(spaces)

    def differences(self, other: StoreSpec) -> list[str]:
        """Human-readable differences, `other` being the one asked for."""
        out = [f"action_dim {other.action_dim} vs stored {self.action_dim}"] if self.action_dim != other.action_dim else []
        for key in sorted(self.obs.keys() | other.obs.keys()):
            mine, theirs = self.obs.get(key), other.obs.get(key)
            if mine != theirs:
                fmt = lambda s: "absent" if s is None else f"{s[1]} {list(s[0])}"  # noqa: E731
                out.append(f"'{key}' {fmt(theirs)} vs stored {fmt(mine)}")
        return out


@dataclass(frozen=True)
class EpisodeInfo:
    """One committed episode's place in the store and its metadata."""

    index: int
    start: int
    stop: int
    source: str
    success: bool | None
    task: str
    seed: int | None
    start_time: float
    notes: str
    has_final_obs: bool

    @property
    def length(self) -> int:
        return self.stop - self.start


def _data_path(key: str) -> str:
    return f"data/{key}"


def _increasing_prefix(raw_ends: np.ndarray) -> int:
    """Length of the prefix of `episode_ends` that is strictly increasing and positive."""
    previous = np.concatenate([[0], raw_ends[:-1]])
    ok = raw_ends > previous
    return int(np.argmin(ok)) if not ok.all() else len(raw_ends)


def _read_episode_ends(array: zarr.Array) -> np.ndarray:
    """`meta/episode_ends` a chunk at a time, up to the chunk holding its first entry that is not a commit:
    however long the array claims to be, only what was committed (plus one chunk) is read."""
    step = array.chunks[0]
    parts: list[np.ndarray] = []
    for start in range(0, array.shape[0], step):
        parts.append(np.asarray(array[start : start + step], np.int64))
        if _increasing_prefix(np.concatenate(parts)) < start + len(parts[-1]):
            break
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def is_zip_store(path: Path) -> bool:
    """A packed store: one zip file holding the store's keys (see tether.datasets.pack)."""
    return path.is_file() and zipfile.is_zipfile(path)


class EpisodeStore:
    """Read-only view of a store's committed episodes (a directory, or a packed zip file). Safe while
    another process appends to a directory store."""

    def __init__(self, path: str | os.PathLike[str], *, strict: bool = True) -> None:
        """With `strict` (readers), a damaged store raises `StoreDamage`. Without it (verify, repair), it opens
        when its attrs and array metadata are sound: `damage` lists what is wrong with its episode index, and
        only the episodes before the first damaged one count as committed."""
        self.path = Path(path)
        self.strict = strict
        self.packed = is_zip_store(self.path)
        if not self.packed and not (self.path / "zarr.json").is_file():
            raise StoreError(f"{self.path}: not a zarr store (no zarr.json) nor a packed .zip store")
        try:
            self._store = ZipStore(self.path, mode="r") if self.packed else LocalStore(self.path, read_only=True)
            self._root = zarr.open_group(self._store, mode="r")
        except Exception as error:  # zarr raises several kinds; all mean the same to a user
            raise StoreError(f"{self.path}: cannot open as zarr v3: {error}") from None
        self.attrs: dict[str, Any] = dict(self._root.attrs)
        if self.attrs.get("format") != FORMAT:
            raise StoreError(f"{self.path}: not a tether episode store (attrs format is {self.attrs.get('format')!r})")
        if self.attrs.get("schema_version") != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: schema version {self.attrs.get('schema_version')} is not {SCHEMA_VERSION}"
            )
        problems = attr_problems(self.attrs)
        if problems:
            raise StoreDamage(self.path, [Damage(problem) for problem in problems])
        self._zip_names = set(zipfile.ZipFile(self.path).namelist()) if self.packed else set()
        self.spec = StoreSpec.from_json(self.attrs)
        self.fps: float = float(self.attrs["fps"])
        self.rig: dict[str, Any] | None = self.attrs.get("rig")
        self.image_codec: dict[str, Any] = self.attrs["image_codec"]
        self.refresh()

    # --- structure ---------------------------------------------------------------------

    @property
    def data_keys(self) -> list[str]:
        """Keys of the per-step arrays: observation keys, then action, reward, flags, timestamp."""
        return [*self.spec.obs, *STEP_ARRAYS]

    def array_paths(self) -> list[str]:
        """Paths of every array the schema has, relative to the store root."""
        return list(self.schema())

    def schema(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """Every array of the schema: path -> (dtype, shape of one row)."""
        actions = (self.spec.action_dim,)
        return {
            **{_data_path(key): (dtype, shape) for key, (shape, dtype) in self.spec.obs.items()},
            **{_data_path(name): (dtype, actions if "action" in name else ()) for name, dtype in STEP_ARRAYS.items()},
            **{f"{FINAL}/{key}": (dtype, shape) for key, (shape, dtype) in self.spec.obs.items()},
            **{f"{EPISODES}/{name}": (dtype, ()) for name, (dtype, _) in EPISODE_COLUMNS.items()},
            ENDS: ("int64", ()),
        }

    @property
    def observation_space(self) -> gym.spaces.Dict:
        return self.spec.observation_space

    def refresh(self) -> int:
        """Re-read the commit point; returns how many episodes are committed now. Array metadata is checked
        against the schema and the index against the arrays before anything is read."""
        schema = self.schema()
        # The index first, then the arrays: a writer grows them before it commits, so they cover it.
        self._arrays = {ENDS: self._open_array(ENDS, *schema[ENDS])}
        try:
            self.raw_episode_ends = _read_episode_ends(self._arrays[ENDS])
        except OSError:
            raise
        except Exception as error:  # a damaged index: nothing in the store can be placed
            raise StoreDamage(self.path, [Damage(f"{ENDS} does not decode: {type(error).__name__}: {error}")]) from None
        self._arrays |= {p: self._open_array(p, *spec) for p, spec in schema.items() if p != ENDS}
        count, self.damage = self._index_damage()
        if self.damage and self.strict:
            raise StoreDamage(self.path, self.damage)
        self.episode_ends = self.raw_episode_ends[:count]
        columns = {name: self.read_rows(f"{EPISODES}/{name}", 0, count) for name in EPISODE_COLUMNS}
        starts = np.concatenate([[0], self.episode_ends[:-1]])
        self.episodes = [
            EpisodeInfo(
                index=i,
                start=int(starts[i]),
                stop=int(self.episode_ends[i]),
                source=str(columns["source"][i]),
                success=None if columns["success"][i] < 0 else bool(columns["success"][i]),
                task=str(columns["task"][i]),
                seed=None if columns["seed"][i] < 0 else int(columns["seed"][i]),
                start_time=float(columns["start_time"][i]),
                notes=str(columns["notes"][i]),
                has_final_obs=bool(columns["has_final_obs"][i]),
            )
            for i in range(count)
        ]
        return count

    def _open_array(self, array_path: str, dtype: str, tail: tuple[int, ...]) -> zarr.Array:
        try:
            array = zarr.open_array(self._store, path=array_path, mode="r")
        except Exception as error:  # zarr raises several kinds; all mean the metadata is missing or unreadable
            raise StoreDamage(self.path, [Damage(f"{array_path}: missing or unreadable array metadata: {error}")]) from None
        problems = array_problems(array_path, array, dtype, tail)
        if problems:
            raise StoreDamage(self.path, [Damage(problem) for problem in problems])
        return array

    def _index_damage(self) -> tuple[int, list[Damage]]:
        """How many episodes are whole (index entries increasing, their frames and rows in every array), and
        what is wrong past them. Zero entries past the last commit are a commit a crash interrupted, not damage."""
        raw = self.raw_episode_ends
        count = _increasing_prefix(raw)
        damage = []
        if count < len(raw) and raw[count] != 0:
            before = raw[count - 1] if count else 0
            damage.append(Damage(f"{ENDS}: entry {count} ({raw[count]}) does not follow {before}", count))
        claimed = self._arrays[ENDS].shape[0]
        if claimed > len(raw):  # reading stopped a chunk past the last commit: the rest is a claim, not commits
            damage.append(Damage(f"{ENDS}: claims {claimed} entries, {count} of them commits", count))
        short: dict[int, list[str]] = {}  # first episode an array does not hold -> those arrays
        for path, array in self._arrays.items():
            held = array.shape[0] if path.startswith("meta/") else int(np.searchsorted(raw[:count], array.shape[0], "right"))
            if path != ENDS and held < count:
                short.setdefault(held, []).append(f"{path} ({array.shape[0]} rows)")
        for episode, paths in sorted(short.items()):
            named = ", ".join(paths[:2]) + (f" and {len(paths) - 2} more arrays" if len(paths) > 2 else "")
            damage.append(Damage(f"episode {episode}: the index commits {count} episodes, {int(raw[count - 1])} frames; "
                                 f"{named} hold less", episode))
        if damage:
            count = min(d.episode for d in damage if d.episode is not None)
        return count, damage

    def _episode_at(self, array_path: str, row: int) -> int:
        """The episode that row `row` of an array belongs to (rows of meta arrays are episodes)."""
        return row if array_path.startswith("meta/") else int(np.searchsorted(self.episode_ends, row, side="right"))

    def _where(self, array_path: str, row: int) -> str:
        episode = self._episode_at(array_path, row)
        if array_path.startswith("meta/") or episode >= len(self.episode_ends):
            return f"episode {episode}"
        start = int(self.episode_ends[episode - 1]) if episode else 0
        return f"episode {episode} (frames {start}-{int(self.episode_ends[episode]) - 1})"

    def _stored_tail(self, key: str, size: int) -> bytes | None:
        """The last `size` bytes of a stored object (None when it is not stored)."""
        if self.packed:
            if key not in self._zip_names:
                return None
            with zipfile.ZipFile(self.path) as archive:
                return archive.read(key)[-size:]
        try:
            with open(self.path / key, "rb") as stored:
                stored.seek(max(stored.seek(0, os.SEEK_END) - size, 0))
                return stored.read()
        except (FileNotFoundError, IsADirectoryError):
            return None

    def _storage_damage(self, array_path: str, array: zarr.Array, start: int, stop: int) -> Damage | None:
        """The first object (chunk, shard, or a chunk inside a shard) of rows [start, stop) that is not stored."""
        for first, key in storage_units(array, start, stop):
            where = self._where(array_path, max(first, start))
            size = (array.shards[0] // array.chunks[0]) * 16 + 4 if array.shards else 0
            tail = self._stored_tail(f"{array_path}/{key}", size)
            if tail is None:
                return Damage(f"{where}: {array_path}: storage file {key} is missing", self._episode_at(array_path, first))
            missing = missing_inner_chunks(array, tail, first, start, stop) if array.shards else []
            if missing:
                return Damage(f"{where}: {array_path}: row {missing[0]} is not in its shard {key}",
                              self._episode_at(array_path, missing[0]))
        return None

    def read_rows(self, array_path: str, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of an array, after checking that every object holding them is stored: zarr would
        read a missing one as fill values. Raises `StoreDamage` naming the episode and the array."""
        array = self.array(array_path)
        damage = self._storage_damage(array_path, array, start, stop)
        if damage is None:
            try:
                return array[start:stop]
            except OSError:
                raise
            except Exception as error:  # a codec's error on bytes that are not what they claim
                first = storage_units(array, start, stop)[0][0]  # the damage may start before `start`
                damage = Damage(f"{self._where(array_path, start)}: {array_path} does not decode: "
                                f"{type(error).__name__}: {error}", self._episode_at(array_path, first))
        raise StoreDamage(self.path, [damage])

    @property
    def n_episodes(self) -> int:
        return len(self.episode_ends)

    def stored_bytes(self) -> dict[str, int]:
        """Size of every stored object (metadata document or chunk / shard) by its key, e.g. `data/action/c/0/0`."""
        if self.packed:
            with zipfile.ZipFile(self.path) as archive:
                return {info.filename: info.file_size for info in archive.infolist()}
        return {f.relative_to(self.path).as_posix(): f.stat().st_size for f in self.path.rglob("*") if f.is_file()}

    @property
    def n_frames(self) -> int:
        return int(self.episode_ends[-1]) if len(self.episode_ends) else 0

    # --- data --------------------------------------------------------------------------

    def array(self, path: str) -> zarr.Array:
        """The zarr array at `path` (e.g. `data/action`); its shape may include an uncommitted tail."""
        if path not in self._arrays:
            raise StoreError(f"{self.path}: no array '{path}' (known: {', '.join(self._arrays)})")
        return self._arrays[path]

    def lazy(self, key: str) -> zarr.Array:
        """The per-step array `key` for reading rows on demand (a sampler over images too big to load), after
        checking once that every object holding its committed rows is stored. Raises `StoreDamage`."""
        path = _data_path(key)
        array = self.array(path)
        damage = self._storage_damage(path, array, 0, self.n_frames)
        if damage is not None:
            raise StoreDamage(self.path, [damage])
        return array

    def load(self, key: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Committed rows [start, stop) of the per-step array `key` (e.g. `images/front`, `action`)."""
        stop = self.n_frames if stop is None else stop
        if not 0 <= start <= stop <= self.n_frames:
            raise StoreError(f"{self.path}: rows [{start}, {stop}) outside the {self.n_frames} committed frames")
        return self.read_rows(_data_path(key), start, stop)

    def final_obs(self, key: str) -> np.ndarray:
        """(E, ...) true final observations of `key`, one per committed episode."""
        return self.read_rows(f"{FINAL}/{key}", 0, self.n_episodes)

    def episode(self, index: int, keys: list[str] | None = None) -> EpisodeArrays:
        """Episode `index` as arrays (observation `keys` only, if given)."""
        if not 0 <= index < self.n_episodes:
            raise StoreError(f"{self.path}: no episode {index} ({self.n_episodes} committed)")
        info = self.episodes[index]
        obs_keys = list(self.spec.obs) if keys is None else keys
        rows = {key: self.load(key, info.start, info.stop) for key in [*obs_keys, *STEP_ARRAYS]}
        return EpisodeArrays(
            obs={key: rows[key] for key in obs_keys},
            final_obs={key: self.read_rows(f"{FINAL}/{key}", index, index + 1)[0] for key in obs_keys},
            **{name: rows[name] for name in STEP_ARRAYS},
        )

    def iter_episodes(
        self, indices: Sequence[int] | None = None, keys: list[str] | None = None, batch_frames: int = BATCH_FRAMES
    ) -> Iterator[EpisodeArrays]:
        """Episodes `indices` (default: all committed) in order, as `episode` gives them, but reading runs of
        consecutive episodes with one read per array (a saved replay buffer holds hundreds of short runs)."""
        indices = range(self.n_episodes) if indices is None else indices
        missing = [index for index in indices if not 0 <= index < self.n_episodes]
        if missing:
            raise StoreError(f"{self.path}: no episode {missing[0]} ({self.n_episodes} committed)")
        obs_keys = list(self.spec.obs) if keys is None else keys
        for run in _consecutive_runs(indices, self.episode_ends, batch_frames):
            first, last = self.episodes[run[0]], self.episodes[run[-1]]
            rows = {key: self.load(key, first.start, last.stop) for key in [*obs_keys, *STEP_ARRAYS]}
            finals = {key: self.read_rows(f"{FINAL}/{key}", run[0], run[-1] + 1) for key in obs_keys}
            for offset, index in enumerate(run):
                info = self.episodes[index]
                steps = slice(info.start - first.start, info.stop - first.start)
                yield EpisodeArrays(
                    obs={key: rows[key][steps] for key in obs_keys},
                    final_obs={key: finals[key][offset] for key in obs_keys},
                    **{name: rows[name][steps] for name in STEP_ARRAYS},
                )


def _consecutive_runs(indices: Iterable[int], ends: np.ndarray, batch_frames: int) -> Iterator[list[int]]:
    """`indices` cut into runs of consecutive episodes of at most `batch_frames` frames (or one episode)."""
    run: list[int] = []
    frames = 0
    for index in indices:
        length = int(ends[index] - (ends[index - 1] if index > 0 else 0))
        if run and (index != run[-1] + 1 or frames + length > batch_frames):
            yield run
            run, frames = [], 0
        run.append(index)
        frames += length
    if run:
        yield run


@dataclass
class _OpenEpisode:
    source: str
    task: str
    seed: int | None
    notes: str
    start_time: float
    start: int
    last_obs: Observation | None = None
    ended: bool = False  # a terminated / truncated step was added


class _WriteBuffer:
    """Rows of one array from `start` up to the writer's cursor, not yet handed to a write. Rows are copied in
    once (the caller may reuse its arrays); a flushed buffer is never written again, so views of it stay valid."""

    def __init__(self, start: int, capacity: int, tail: tuple[int, ...], dtype: np.dtype) -> None:
        self.start, self.count = start, 0
        self.rows = np.empty((capacity, *tail), dtype)

    def take(self, values: np.ndarray) -> None:
        self.rows[self.count : self.count + len(values)] = values
        self.count += len(values)


class EpisodeWriter:
    """Appends whole episodes to a store; one writer per store at a time (a lock file enforces it)."""

    def __init__(self, path: Path, *, _lock: int, strict: bool = True) -> None:
        """Use `create` or `open`."""
        self.path = path
        self._lock = _lock
        try:
            self._reader = EpisodeStore(path, strict=strict)
        except BaseException:
            os.close(_lock)
            raise
        self.spec = self._reader.spec
        self.fps = self._reader.fps
        self.chunk_steps = int(self._reader.attrs["chunk_steps"])
        paths = self._reader.array_paths()
        self._arrays = {p: zarr.open_array(str(path), path=p, mode="r+").with_config(WRITE_CONFIG) for p in paths}
        self._committed = self._reader.n_frames
        self._n_episodes = self._reader.n_episodes
        self._cursor = self._committed
        self._episode: _OpenEpisode | None = None
        # Rows go to disk a write unit at a time (one shard of images, one chunk of numbers), on
        # background threads so encoding overlaps the caller (blosc releases the GIL, so cameras encode
        # in parallel); at most one write per array in flight.
        self._pool = ThreadPoolExecutor(max_workers=WRITE_THREADS, thread_name_prefix="tether-store")
        self._writes: dict[str, Future[None]] = {}
        self._buffers: dict[str, _WriteBuffer] = {}
        self._flushed: dict[str, _WriteBuffer] = {}  # per key, the last buffer handed to a write
        self._units = {key: (self._array(key).shards or self._array(key).chunks)[0] for key in self.data_keys}
        truncate_episode_ends(self._arrays[ENDS], self._n_episodes)  # drop an entry a crash left half-made

    # --- opening -----------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        observation_space: gym.spaces.Dict,
        action_dim: int,
        fps: float,
        rig: RigConfig | Mapping[str, Any] | None = None,
        *,
        image_codec: ImageCodec = "lossless",
        image_quality: int = 90,
        chunk_steps: int = 1024,
        attrs: Mapping[str, Any] | None = None,
        exist_ok: bool = False,
    ) -> EpisodeWriter:
        """A new empty store (built aside and renamed into place, so it appears whole or not at all).
        With `exist_ok`, an existing store is opened for appending if its spec and fps match."""
        path = Path(path)
        spec = StoreSpec.from_space(observation_space, action_dim)
        if not fps > 0:
            raise StoreError(f"{path}: fps must be positive, got {fps}")
        if path.exists():
            if not exist_ok:
                raise StoreError(f"{path}: already exists (open it to append, or pass exist_ok)")
            writer = cls.open(path, observation_space, action_dim)
            if writer.fps != float(fps):
                writer.close()
                raise StoreError(f"{path}: fps {fps} differs from the stored {writer.fps}; nothing written")
            return writer
        if image_codec not in IMAGE_CODECS:
            raise StoreError(f"{path}: image codec '{image_codec}' is not one of {', '.join(IMAGE_CODECS)}")
        if chunk_steps < 1:
            raise StoreError(f"{path}: chunk_steps must be at least 1, got {chunk_steps}")
        image_kwargs, image_attrs = image_encoding(image_codec, image_quality)
        rig_json = rig.model_dump(mode="json") if isinstance(rig, RigConfig) else (dict(rig) if rig else None)
        building = path.parent / f".{path.name}.creating-{uuid.uuid4().hex[:8]}"
        try:
            root = zarr.open_group(str(building), mode="w-", zarr_format=3)
            root.attrs.update(
                {
                    "format": FORMAT,
                    "schema_version": SCHEMA_VERSION,
                    **spec.to_json(),
                    "fps": float(fps),
                    "chunk_steps": chunk_steps,
                    "image_codec": image_attrs,
                    "rig": rig_json,
                    "created": time.time(),
                    **(attrs or {}),
                }
            )
            _create_schema_arrays(root, spec, chunk_steps, image_kwargs)
            building.rename(path)
        finally:
            shutil.rmtree(building, ignore_errors=True)
        return cls.open(path)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        observation_space: gym.spaces.Dict | None = None,
        action_dim: int | None = None,
        *,
        strict: bool = True,
    ) -> EpisodeWriter:
        """An existing store, for appending. Given a space and action_dim, a different spec is refused
        before anything is written. A damaged store is refused too, unless not `strict` (repair: only its
        whole episodes count as committed, so truncating cuts the damage away)."""
        path = Path(path)
        reader = EpisodeStore(path, strict=strict)
        if reader.packed:
            raise StoreError(f"{path}: a packed (zip) store is read-only; append to the directory store it came from")
        if observation_space is not None or action_dim is not None:
            if observation_space is None or action_dim is None:
                raise StoreError(f"{path}: give both observation_space and action_dim to check the spec")
            wanted = StoreSpec.from_space(observation_space, action_dim)
            differences = reader.spec.differences(wanted)
            if differences:
                raise StoreError(f"{path}: spec differs, nothing written: {'; '.join(differences)}")
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"{path}: another process is writing to this store") from None
        return cls(path, _lock=fd, strict=strict)

    def close(self) -> None:
        """Release the store; an episode still open is discarded (it was never committed)."""
        if self._lock < 0:
            return
        try:
            if self._episode is not None:
                log.warning("%s: closing with episode open; discarding its %d steps", self.path, self.steps_in_episode)
                self.discard_episode()
            self._wait_writes(raise_errors=False)
            try:
                self.truncate_tail()  # the room grown ahead of the last commit
            except OSError as error:  # a full disk: the tail stays, readers ignore it and repair truncates it
                log.warning("%s: could not trim the uncommitted tail: %s", self.path, error)
        finally:  # even when the disk refuses the discard: its frames stay an uncommitted tail
            self._pool.shutdown()
            os.close(self._lock)
            self._lock = -1

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- episodes ----------------------------------------------------------------------

    @property
    def n_episodes(self) -> int:
        """Committed episodes."""
        return self._n_episodes

    @property
    def n_frames(self) -> int:
        """Committed frames."""
        return self._committed

    @property
    def steps_in_episode(self) -> int:
        """Steps added to the open episode so far."""
        return self._cursor - self._committed

    def begin_episode(
        self,
        *,
        source: str,
        task: str = "",
        seed: int | None = None,
        notes: str = "",
        start_time: float | None = None,
    ) -> None:
        """Start an episode; `source` is one of teleop, policy, hil, scripted, sim."""
        if self._episode is not None:
            raise StoreError(f"{self.path}: an episode is already open; end or discard it first")
        if source not in EPISODE_SOURCES:
            raise StoreError(f"{self.path}: source '{source}' is not one of {', '.join(EPISODE_SOURCES)}")
        if seed is not None and seed < 0:
            raise StoreError(f"{self.path}: seed must be non-negative, got {seed}")
        self._episode = _OpenEpisode(
            source=source,
            task=task,
            seed=seed,
            notes=notes,
            start_time=time.time() if start_time is None else float(start_time),
            start=self._committed,
        )

    def add_step(
        self,
        obs: Observation,
        action: np.ndarray,
        reward: float = 0.0,
        terminated: bool = False,
        truncated: bool = False,
        intervened: bool = False,
        policy_action: np.ndarray | None = None,
        timestamp: float | None = None,
    ) -> None:
        """One step: the observation the action was taken from, the executed action and its outcome.
        `timestamp` defaults to now."""
        self.add_steps(
            {key: np.asarray(value)[None] for key, value in obs.items()},
            np.asarray(action)[None],
            reward=np.array([reward]),
            terminated=np.array([terminated]),
            truncated=np.array([truncated]),
            intervened=np.array([intervened]),
            policy_action=None if policy_action is None else np.asarray(policy_action)[None],
            timestamp=np.array([time.time() if timestamp is None else timestamp]),
        )

    def add_steps(
        self,
        obs: Observation,
        action: np.ndarray,
        *,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        intervened: np.ndarray,
        policy_action: np.ndarray | None = None,
        timestamp: np.ndarray | None = None,
    ) -> None:
        """A batch of n steps, every array with leading axis n. Rows go to disk whenever they fill a
        shard (images, ~4 MiB) or a chunk (numbers), so memory stays bounded however long the episode."""
        episode = self._require_episode()
        n = len(action)
        rows = self._step_rows(
            obs, action, reward=reward, terminated=terminated, truncated=truncated, intervened=intervened,
            policy_action=policy_action, timestamp=timestamp,
        )
        done = rows["terminated"] | rows["truncated"]
        if episode.ended or done[:-1].any():
            raise StoreError(f"{self.path}: a step follows a terminated/truncated step in the same episode")
        self._grow(self._cursor + n)
        for key, value in rows.items():
            self._buffer(key, value)
        self._cursor += n
        episode.ended = bool(done[-1])
        episode.last_obs = {key: self._last_row(key) for key in self.spec.obs}

    def end_episode(self, *, success: bool | None, final_obs: Observation | None = None) -> int:
        """Commit the open episode and return its index. `final_obs` is the observation after the
        last action; without it RL samplers skip a non-terminal last step (its next obs is unknown)."""
        episode = self._require_episode()
        if self._cursor == self._committed:
            raise StoreError(f"{self.path}: the episode has no steps; discard it instead")
        if final_obs is not None:
            final_obs = self._validate({k: np.asarray(v)[None] for k, v in final_obs.items()}, None, 1)
            final_obs = {key: value[0] for key, value in final_obs.items()}
        for key in self.data_keys:
            self._flush(key)
        self._wait_writes()  # every frame on disk before anything points at it
        index = self._n_episodes
        rows: list[tuple[zarr.Array, Any]] = [
            (self._arrays[f"{FINAL}/{key}"], value) for key, value in (final_obs or episode.last_obs or {}).items()
        ]
        values = {
            "source": episode.source,
            "success": -1 if success is None else int(success),
            "task": episode.task,
            "seed": -1 if episode.seed is None else episode.seed,
            "start_time": episode.start_time,
            "notes": episode.notes,
            "has_final_obs": final_obs is not None,
        }
        rows += [(self._arrays[f"{EPISODES}/{name}"], value) for name, value in values.items()]
        # Per-episode rows are independent writes: all at once, and only then the commit point. Step arrays keep
        # the room grown ahead of the cursor (trimmed at close): shrinking them at every commit and growing them
        # again at the next step cost two metadata writes per array per episode.
        for job in [self._pool.submit(_set_row, array, index, value) for array, value in rows]:
            job.result()
        _set_row(self._arrays[ENDS], index, self._cursor)  # the commit point
        self._committed = self._cursor
        self._n_episodes += 1
        self._episode = None
        return index

    def discard_episode(self) -> None:
        """Drop the open episode; its frames on disk are truncated away."""
        self._require_episode()
        self._episode = None
        self._cursor = self._committed
        self._buffers.clear()
        self._wait_writes(raise_errors=False)  # its writes may fail: the frames are dropped anyway
        for key in self.data_keys:
            array = self._array(key)
            if array.shape[0] > self._committed:
                array.resize((self._committed, *array.shape[1:]))

    def truncate_tail(self, keep_episodes: int | None = None) -> int:
        """Cut every array back to the committed episodes (what a crash left past them), or to the first
        `keep_episodes` of them; returns the number of frames dropped."""
        if self._episode is not None:
            raise StoreError(f"{self.path}: an episode is open; end or discard it before truncating")
        if keep_episodes is not None and keep_episodes < self._n_episodes:
            self._n_episodes = keep_episodes
            self._committed = self._cursor = int(self._reader.episode_ends[keep_episodes - 1]) if keep_episodes else 0
            truncate_episode_ends(self._arrays[ENDS], keep_episodes)
        dropped = max(self._array(key).shape[0] for key in self.data_keys) - self._committed
        for path, array in self._arrays.items():
            keep = self._n_episodes if path.startswith("meta/") else self._committed
            if array.shape[0] > keep:
                array.resize((keep, *array.shape[1:]))
        return max(dropped, 0)

    def write_episode(
        self,
        episode: EpisodeArrays,
        *,
        source: str,
        success: bool | None = None,
        task: str = "",
        seed: int | None = None,
        notes: str = "",
    ) -> int:
        """Commit a whole episode held as arrays (its final obs included); returns its index."""
        start_time = float(episode.timestamp[0]) if episode.timestamp is not None else None
        self.begin_episode(source=source, task=task, seed=seed, notes=notes, start_time=start_time)
        try:
            self.add_steps(
                episode.obs,
                episode.action,
                reward=episode.reward,
                terminated=episode.terminated,
                truncated=episode.truncated,
                intervened=episode.intervened,
                policy_action=episode.policy_action,
                timestamp=episode.timestamp,
            )
            return self.end_episode(success=success, final_obs=episode.final_obs)
        except BaseException:
            if self._episode is not None:
                self.discard_episode()
            raise

    def write_episodes(self, episodes: Iterable[EpisodeArrays], *, source: str, batch_frames: int = BATCH_FRAMES) -> int:
        """Commit many whole episodes (final obs included, no per-episode metadata besides `source`) with one
        write per array and one commit point per `batch_frames` frames instead of one per episode: a learner's
        buffer checkpoint holds hundreds of short runs. Returns how many were written."""
        if self._lock < 0:
            raise StoreError(f"{self.path}: the writer is closed")
        if self._episode is not None:
            raise StoreError(f"{self.path}: an episode is open; end or discard it before writing whole episodes")
        if source not in EPISODE_SOURCES:
            raise StoreError(f"{self.path}: source '{source}' is not one of {', '.join(EPISODE_SOURCES)}")
        written, batch, frames = 0, [], 0
        for episode in episodes:
            batch.append(episode)
            frames += len(episode)
            if frames >= batch_frames:
                written += self._commit_batch(batch, source)
                batch, frames = [], 0
        return written + (self._commit_batch(batch, source) if batch else 0)

    def _commit_batch(self, episodes: list[EpisodeArrays], source: str) -> int:
        steps, finals = [], []
        for number, episode in enumerate(episodes):
            if len(episode) == 0:
                raise StoreError(f"{self.path}: episode {number} of the batch has no steps")
            rows = self._step_rows(
                episode.obs, episode.action, reward=episode.reward, terminated=episode.terminated,
                truncated=episode.truncated, intervened=episode.intervened, policy_action=episode.policy_action,
                timestamp=episode.timestamp,
            )
            if (rows["terminated"] | rows["truncated"])[:-1].any():
                raise StoreError(f"{self.path}: episode {number} of the batch goes on after a terminated/truncated step")
            steps.append(rows)
            finals.append(self._validate({k: np.asarray(v)[None] for k, v in episode.final_obs.items()}, None, 1))
        first, count = self._n_episodes, len(episodes)
        ends = self._committed + np.cumsum([len(e) for e in episodes])
        episode_rows = slice(first, first + count)
        columns = {
            "source": np.array([source] * count),
            "success": np.full(count, -1, np.int8),
            "task": np.array([""] * count),
            "seed": np.full(count, -1, np.int64),
            "start_time": np.array([e.timestamp[0] if e.timestamp is not None else np.nan for e in episodes]),
            "notes": np.array([""] * count),
            "has_final_obs": np.ones(count, bool),
        }
        writes = [(self._array(key), slice(self._committed, int(ends[-1])), np.concatenate([r[key] for r in steps]))
                  for key in self.data_keys]
        writes += [(self._arrays[f"{FINAL}/{key}"], episode_rows, np.concatenate([f[key] for f in finals]))
                   for key in self.spec.obs]
        writes += [(self._arrays[f"{EPISODES}/{name}"], episode_rows, values) for name, values in columns.items()]
        # Every frame and per-episode row on disk, and only then the commit point.
        for job in [self._pool.submit(_set_rows, array, rows, values) for array, rows, values in writes]:
            job.result()
        _set_rows(self._arrays[ENDS], episode_rows, ends)
        self._committed = self._cursor = int(ends[-1])
        self._n_episodes += count
        return count

    # --- internals ---------------------------------------------------------------------

    def _step_rows(
        self,
        obs: Observation,
        action: np.ndarray,
        *,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        intervened: np.ndarray,
        policy_action: np.ndarray | None,
        timestamp: np.ndarray | None,
    ) -> dict[str, np.ndarray]:
        """n steps checked against the store's spec and cast to its dtypes, by data key."""
        n = len(action)
        rows = self._validate(obs, action, n)
        return rows | {
            "action": np.asarray(action, np.float32),
            "policy_action": np.full((n, self.spec.action_dim), np.nan, np.float32)
            if policy_action is None
            else self._checked(policy_action, (n, self.spec.action_dim), "policy_action").astype(np.float32),
            "reward": self._checked(reward, (n,), "reward").astype(np.float32),
            "terminated": self._checked(terminated, (n,), "terminated").astype(bool),
            "truncated": self._checked(truncated, (n,), "truncated").astype(bool),
            "intervened": self._checked(intervened, (n,), "intervened").astype(bool),
            "timestamp": np.full(n, np.nan)
            if timestamp is None
            else self._checked(timestamp, (n,), "timestamp").astype(np.float64),
        }

    @property
    def data_keys(self) -> list[str]:
        return [*self.spec.obs, *STEP_ARRAYS]

    def _require_episode(self) -> _OpenEpisode:
        if self._lock < 0:
            raise StoreError(f"{self.path}: the writer is closed")
        if self._episode is None:
            raise StoreError(f"{self.path}: no episode is open; call begin_episode first")
        return self._episode

    def _checked(self, value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
        array = np.asarray(value)
        if array.shape != shape:
            raise StoreError(f"{self.path}: {name} has shape {array.shape}, expected {shape}")
        return array

    def _validate(self, obs: Observation, action: np.ndarray | None, n: int) -> dict[str, np.ndarray]:
        if obs.keys() != self.spec.obs.keys():
            raise StoreError(f"{self.path}: observation keys {sorted(obs)} differ from the store's {sorted(self.spec.obs)}")
        rows = {}
        for key, (shape, dtype) in self.spec.obs.items():
            value = self._checked(obs[key], (n, *shape), f"observation '{key}'")
            if dtype == "uint8" and value.dtype != np.uint8:
                raise StoreError(f"{self.path}: observation '{key}' must be uint8 images, got {value.dtype}")
            rows[key] = value.astype(dtype, copy=False)
        if action is not None:
            self._checked(action, (n, self.spec.action_dim), "action")
        return rows

    def _array(self, key: str) -> zarr.Array:
        return self._arrays[_data_path(key)]

    def _grow(self, rows: int) -> None:
        """Make room for `rows` frames and some ahead, so that resizes (metadata writes) stay rare."""
        for key in self.data_keys:
            array = self._array(key)
            if array.shape[0] < rows:
                array.resize((rows + max(self._units[key], GROW_AHEAD_FRAMES), *array.shape[1:]))

    def _buffer(self, key: str, values: np.ndarray) -> None:
        """Copy the rows of `key` that follow the cursor into its buffer, writing each buffer that reaches the end
        of a write unit (a chunk, or a shard)."""
        unit, row, done = self._units[key], self._cursor, 0
        while done < len(values):
            buffer = self._buffers.get(key)
            if buffer is None:
                boundary = (row // unit + 1) * unit
                buffer = self._buffers[key] = _WriteBuffer(row, boundary - row, values.shape[1:], values.dtype)
            take = min(len(values) - done, len(buffer.rows) - buffer.count)
            buffer.take(values[done : done + take])
            done, row = done + take, row + take
            if buffer.count == len(buffer.rows):
                self._flush(key)

    def _last_row(self, key: str) -> np.ndarray:
        """The newest row of `key` (a view of its buffer, or of the buffer just handed to a write)."""
        buffer = self._buffers.get(key) or self._flushed[key]
        return buffer.rows[buffer.count - 1]

    def _flush(self, key: str) -> None:
        """Start writing the buffered rows of `key` once its previous write is done."""
        buffer = self._buffers.pop(key, None)
        if buffer is None or buffer.count == 0:
            return
        self._flushed[key] = buffer
        previous = self._writes.pop(key, None)
        if previous is not None:
            previous.result()  # one write per array at a time: a chunk or shard shared by two is read-modify-written
        rows = slice(buffer.start, buffer.start + buffer.count)
        self._writes[key] = self._pool.submit(self._array(key).__setitem__, rows, buffer.rows[: buffer.count])

    def _wait_writes(self, raise_errors: bool = True) -> None:
        writes, self._writes = list(self._writes.values()), {}
        for write in writes:
            error = write.exception()
            if error is not None and raise_errors:
                raise error


def truncate_episode_ends(array: zarr.Array, count: int) -> None:
    """Shrink `meta/episode_ends` to `count` entries, zeroing the dropped ones first: a later resize
    then exposes zeros (ignored) rather than stale ends that would look committed."""
    if array.shape[0] > count:
        array[count:] = 0
        array.resize((count,))


def _set_rows(array: zarr.Array, rows: slice, values: np.ndarray) -> None:
    """Write rows [start, stop) of an array, making its shape exactly `stop` rows."""
    if array.shape[0] != rows.stop:
        array.resize((rows.stop, *array.shape[1:]))
    array[rows] = values


def _set_row(array: zarr.Array, index: int, value: Any) -> None:
    """Write row `index` of a per-episode array, making its shape exactly index + 1."""
    _set_rows(array, slice(index, index + 1), np.asarray([value]))


def _create_schema_arrays(
    root: zarr.Group, spec: StoreSpec, chunk_steps: int, image_kwargs: dict[str, Any]
) -> None:
    """Every array of the schema, empty."""
    config = WRITE_CONFIG
    episode_chunk = 256
    for key, (shape, dtype) in spec.obs.items():
        image = is_image_key(key)
        kwargs = image_kwargs if image else {"compressors": number_compressors()}
        names = ("height", "width", "channel") if image else ("dim",)
        frame_bytes = int(np.prod(shape))
        # Lossless frames share a chunk (a few hundred KiB) and need no shards; a lossy codec encodes one frame a
        # chunk, which shards gather into ~4 MiB files.
        lossy = image and "serializer" in image_kwargs
        frames = max(1, min(CHUNK_BYTES // frame_bytes, MAX_CHUNK_FRAMES)) if image and not lossy else 1
        shard_frames = min(SHARD_BYTES // frame_bytes, MAX_SHARD_FRAMES)
        sharded = lossy and shard_frames >= MIN_SHARD_FRAMES
        for path, rows, axis in ((_data_path(key), chunk_steps, "time"), (f"{FINAL}/{key}", episode_chunk, "episode")):
            root.create_array(
                path,
                shape=(0, *shape),
                chunks=(frames if image else rows, *shape),
                shards=(shard_frames, *shape) if sharded and axis == "time" else None,
                dtype=dtype,
                dimension_names=(axis, *names),
                config=config,
                **kwargs,
            )
    for name, dtype in STEP_ARRAYS.items():
        tail = (spec.action_dim,) if name in ("action", "policy_action") else ()
        root.create_array(
            _data_path(name),
            shape=(0, *tail),
            chunks=(chunk_steps, *tail),
            dtype=dtype,
            fill_value=np.nan if dtype.startswith("float") else None,
            dimension_names=("time", *(("dim",) if tail else ())),
            compressors=number_compressors(),
            config=config,
        )
    for name, (dtype, unknown) in EPISODE_COLUMNS.items():
        root.create_array(
            f"{EPISODES}/{name}", shape=(0,), chunks=(episode_chunk,), dtype=dtype, fill_value=unknown, config=config
        )
    root.create_array(
        ENDS, shape=(0,), chunks=(episode_chunk,), dtype="int64", fill_value=0, dimension_names=("episode",), config=config
    )
