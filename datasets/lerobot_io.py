"""LeRobotDataset v3.0 export and import: LeRobot's trainers read tether's demos, and tether reads LeRobot's.

    out/
      meta/info.json                            codebase_version "v3.0", fps, features, totals, file layout;
                                                a "tether" entry: what import needs to restore tether's keys
      meta/stats.json                           per feature: min, max, mean, std, count, q01 ... q99
      meta/tasks.parquet                        task_index, indexed by the task (as pandas reads it)
      meta/episodes/chunk-000/file-000.parquet  one row per episode: tasks, length, rows, file, stats
      data/chunk-000/file-000.parquet           one row per step, images embedded as PNG

Features: `images/<cam>` -> `observation.images.<cam>` (dtype "image": the Hugging Face `datasets` Image
struct `{bytes, path}` holding PNG bytes; no mp4); every other observation key, in the store's key order,
concatenated into `observation.state` (which slice is which key: info.json's "tether" entry); `action`;
`reward` -> `next.reward`; `terminated` -> `next.done`; `truncated` -> `next.truncated`; `intervened` ->
`complementary_info.is_intervention` (where LeRobot's RL buffer looks for extra per-step data); and LeRobot's
`timestamp` (frame_index / fps: seconds since the episode start), `frame_index`, `episode_index`, `index`,
`task_index`. Per-episode metadata (source, success, task, seed, start time, notes) rides along as
`tether/...` columns of the episodes table.

Export reads and writes one episode at a time (a row group each; a new data file when the next episode would
take the current one past `DATA_FILE_SIZE_IN_MB`), so a store larger than memory exports. Statistics are exact
per episode (images per channel, in [0, 1]) and pooled over episodes as LeRobot pools them: mean and variance
by count, quantiles as the count-weighted mean. What LeRobot has no place for stays behind: the policy's
proposed actions and each episode's true final observation (import marks it as not recorded).

Import takes such a folder, or one LeRobot wrote with image features (PNG or JPEG bytes), into a new store:
`observation.images.<cam>` -> `images/<cam>`; `observation.state` -> `state/state`, or split back into
tether's keys when the "tether" entry says how; `observation.<other>` -> `state/<other>`.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import gymnasium as gym
import imagecodecs
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from tether.datasets.diffusion_policy_io import data_name
from tether.datasets.store import EpisodeInfo, EpisodeStore, EpisodeWriter, StoreError
from tether.spaces import IMAGES, STATE, is_image_key

log = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
"""Files per chunk folder, as LeRobot lays them out."""
DATA_FILE_SIZE_IN_MB = 100
"""A data (or episodes) file takes episodes until the next one would pass this size (LeRobot's default)."""
VIDEO_FILE_SIZE_IN_MB = 200
"""LeRobot's default, stated in info.json as LeRobot states it, although no videos are written."""
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
UNSPECIFIED_TASK = "unspecified"
"""The task of an episode recorded without one: LeRobot needs a task per frame."""

OBS = "observation."
CAMERAS = "observation.images."
STATE_FEATURE = "observation.state"
ACTION = "action"
REWARD = "next.reward"
DONE = "next.done"
TRUNCATED = "next.truncated"
INTERVENED = "complementary_info.is_intervention"
IMAGE_NAMES = ["height", "width", "channels"]
INDEX_FEATURES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
                  "task_index": "int64"}  # fmt: skip
REQUIRED_FEATURES = (ACTION, "timestamp", "frame_index", "episode_index", "task_index")
KNOWN_FEATURES = (ACTION, STATE_FEATURE, REWARD, DONE, TRUNCATED, INTERVENED, *INDEX_FEATURES)
EPISODE_COLUMNS = ("episode_index", "length", "data/chunk_index", "data/file_index")
"""What import needs of each row of the episodes table."""
PNG_MAGIC = b"\x89PNG"
JPEG_MAGIC = b"\xff\xd8"


@dataclass(frozen=True)
class _StateSlice:
    """Where one tether observation key sits inside `observation.state`."""

    key: str
    start: int
    shape: tuple[int, ...]

    @property
    def stop(self) -> int:
        return self.start + int(np.prod(self.shape, dtype=np.int64))


def _chunk_file(part: int) -> dict[str, int]:
    """The chunk and file index of the `part`-th file: CHUNKS_SIZE files per chunk folder."""
    return {"chunk_index": part // CHUNKS_SIZE, "file_index": part % CHUNKS_SIZE}


def _action_names(action_dim: int) -> list[str]:
    """tether's action layout (tether.actions) where it is one, else numbered."""
    layouts = {3: ["dx", "dy", "dz"], 4: ["dx", "dy", "dz", "gripper"], 6: ["dx", "dy", "dz", "rx", "ry", "rz"],
               7: ["dx", "dy", "dz", "rx", "ry", "rz", "gripper"]}
    return layouts.get(action_dim, [f"action_{i}" for i in range(action_dim)])


def _write_json(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False))


# --- export ----------------------------------------------------------------------------


def _state_slices(store: EpisodeStore) -> list[_StateSlice]:
    """Every non-image observation key in the store's order, one after the other."""
    slices, start = [], 0
    for key, (shape, _) in store.spec.obs.items():
        if not is_image_key(key):
            slices.append(_StateSlice(key, start, shape))
            start = slices[-1].stop
    return slices


def _features(store: EpisodeStore, state: list[_StateSlice]) -> dict[str, dict[str, Any]]:
    """info.json's features, in the order of the data columns."""
    features: dict[str, dict[str, Any]] = {}
    for key, (shape, _) in store.spec.obs.items():
        if is_image_key(key):
            if "/" in data_name(key):
                raise StoreError(f"{store.path}: camera key '{key}' has a '/', which LeRobot refuses")
            feature = {"dtype": "image", "shape": list(shape), "names": IMAGE_NAMES}
            features[CAMERAS + data_name(key)] = feature
    if state:
        names = [f"{data_name(s.key)}_{i}" for s in state for i in range(s.stop - s.start)]
        features[STATE_FEATURE] = {"dtype": "float32", "shape": [len(names)], "names": names}
    action_dim = store.spec.action_dim
    features[ACTION] = {"dtype": "float32", "shape": [action_dim], "names": _action_names(action_dim)}
    features[REWARD] = {"dtype": "float32", "shape": [1], "names": None}
    for name in (DONE, TRUNCATED, INTERVENED):
        features[name] = {"dtype": "bool", "shape": [1], "names": None}
    features |= {name: {"dtype": kind, "shape": [1], "names": None} for name, kind in INDEX_FEATURES.items()}
    return features


def _arrow_type(feature: dict[str, Any]) -> pa.DataType:
    """The column type the Hugging Face `datasets` library gives the feature (LeRobot reads through it)."""
    if feature["dtype"] == "image":
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    scalar = pa.from_numpy_dtype(np.dtype(feature["dtype"]))
    return scalar if feature["shape"] == [1] else pa.list_(scalar, feature["shape"][0])


def _hf_feature(feature: dict[str, Any]) -> dict[str, Any]:
    """The feature as `datasets` records it in a parquet schema, so `datasets` alone decodes the images."""
    if feature["dtype"] == "image":
        return {"_type": "Image"}
    value = {"dtype": feature["dtype"], "_type": "Value"}
    if feature["shape"] == [1]:
        return value
    return {"feature": value, "length": feature["shape"][0], "_type": "List"}


def _data_schema(features: dict[str, dict[str, Any]]) -> pa.Schema:
    hf = {"info": {"features": {name: _hf_feature(feature) for name, feature in features.items()}}}
    return pa.schema([(name, _arrow_type(feature)) for name, feature in features.items()],
                     metadata={"huggingface": json.dumps(hf)})  # fmt: skip


def _episode_columns(
    store: EpisodeStore, info: EpisodeInfo, state: list[_StateSlice], task_index: int
) -> dict[str, np.ndarray]:
    """One episode's values by feature name (images as uint8 frames), in feature order."""
    episode = store.episode(info.index)
    n = len(episode)
    columns = {CAMERAS + data_name(key): frames for key, frames in episode.obs.items() if is_image_key(key)}
    if state:
        columns[STATE_FEATURE] = np.concatenate([episode.obs[s.key].reshape(n, -1) for s in state], axis=1)
    frame_index = np.arange(n, dtype=np.int64)
    return columns | {
        ACTION: episode.action,
        REWARD: episode.reward,
        DONE: episode.terminated,
        TRUNCATED: episode.truncated,
        INTERVENED: episode.intervened,
        "timestamp": (frame_index / store.fps).astype(np.float32),
        "frame_index": frame_index,
        "episode_index": np.full(n, info.index, np.int64),
        "index": info.start + frame_index,
        "task_index": np.full(n, task_index, np.int64),
    }


def _table(columns: dict[str, np.ndarray], schema: pa.Schema, pool: ThreadPoolExecutor) -> pa.Table:
    """The episode's rows as the data files hold them: images PNG-encoded on the pool's threads."""
    arrays = []
    for field in schema:
        values = columns[field.name]
        if pa.types.is_struct(field.type):
            encoded = pa.array(list(pool.map(imagecodecs.png_encode, values)), pa.binary())
            paths = pa.nulls(len(values), pa.string())
            arrays.append(pa.StructArray.from_arrays([encoded, paths], ["bytes", "path"]))
        elif pa.types.is_fixed_size_list(field.type):
            flat = pa.array(values.reshape(-1), field.type.value_type)
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, field.type.list_size))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _numeric_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Per dimension over one episode's steps; a scalar feature's stats have shape (1,), as LeRobot's do.
    min and max keep the feature's dtype (bool, int), as LeRobot's do."""
    rows = values.reshape(len(values), -1)
    wide = rows.astype(np.float64)
    quantiles = np.quantile(wide, list(QUANTILES.values()), axis=0)
    return {
        "min": rows.min(axis=0),
        "max": rows.max(axis=0),
        "mean": wide.mean(axis=0),
        "std": wide.std(axis=0),
        "count": np.array([len(rows)]),
        **dict(zip(QUANTILES, quantiles)),
    }


def _histogram_quantile(cumulative: np.ndarray, q: float) -> np.ndarray:
    """np.quantile's linear interpolation, read off per-channel cumulative counts of the 256 pixel values."""
    last = cumulative[0, -1] - 1
    position = q * last
    below = int(np.floor(position))
    low = np.argmax(cumulative > below, axis=1)
    high = np.argmax(cumulative > min(below + 1, last), axis=1)
    return low + (position - below) * (high - low)


def _image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per channel, shape (3, 1, 1), in [0, 1], over every pixel of an episode's (n, H, W, 3) uint8 frames
    (LeRobot samples frames; all of them cost little here): a 256-bin histogram per channel gives every
    statistic exactly, quantiles included, in one pass."""
    counts = np.stack([np.bincount(frames[..., c].ravel(), minlength=256) for c in range(3)]).astype(float)
    levels = np.arange(256.0)
    pixels = counts[0].sum()
    mean = counts @ levels / pixels
    seen = counts > 0
    cumulative = np.cumsum(counts, axis=1)
    stats = {
        "min": np.argmax(seen, axis=1),
        "max": 255 - np.argmax(seen[:, ::-1], axis=1),
        "mean": mean,
        "std": np.sqrt(np.maximum(counts @ levels**2 / pixels - mean**2, 0.0)),
        **{name: _histogram_quantile(cumulative, q) for name, q in QUANTILES.items()},
    }
    scaled = {name: (value / 255.0).reshape(3, 1, 1) for name, value in stats.items()}
    return scaled | {"count": np.array([len(frames)])}


def _episode_stats(
    columns: dict[str, np.ndarray], features: dict[str, dict[str, Any]]
) -> dict[str, dict[str, np.ndarray]]:
    return {name: _image_stats(values) if features[name]["dtype"] == "image" else _numeric_stats(values)
            for name, values in columns.items()}  # fmt: skip


def _pooled(stats: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One feature's episodes pooled as LeRobot pools them: min of mins, max of maxes, mean and variance by
    count, quantiles as the count-weighted mean of the episodes' quantiles."""
    counts = np.array([s["count"][0] for s in stats], np.float64)
    weights = (counts / counts.sum()).reshape(-1, *[1] * stats[0]["mean"].ndim)

    def weighted(name: str) -> np.ndarray:
        return (weights * np.stack([s[name] for s in stats])).sum(axis=0)

    mean = weighted("mean")
    spread = np.stack([s["std"] ** 2 + (s["mean"] - mean) ** 2 for s in stats])
    return {
        "min": np.min([s["min"] for s in stats], axis=0),
        "max": np.max([s["max"] for s in stats], axis=0),
        "mean": mean,
        "std": np.sqrt((weights * spread).sum(axis=0)),
        "count": np.array([int(counts.sum())]),
        **{name: weighted(name) for name in QUANTILES},
    }


class _DataFiles:
    """Data parquet files of whole episodes, one row group each; the next file starts when an episode would
    take the current one past the size limit (counted in Arrow bytes, which the PNG bytes dominate)."""

    def __init__(self, root: Path, schema: pa.Schema) -> None:
        self.root, self.schema = root, schema
        self.limit = DATA_FILE_SIZE_IN_MB * 1024**2
        self.part, self.written = 0, 0
        self.writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> dict[str, int]:
        """Append an episode's rows; returns the chunk and file index they went to."""
        if self.writer is not None and self.written + table.nbytes > self.limit:
            self.close()
            self.part, self.written = self.part + 1, 0
        if self.writer is None:
            path = self.root / DATA_PATH.format(**_chunk_file(self.part))
            path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(path, self.schema)
        self.writer.write_table(table, row_group_size=table.num_rows)
        self.written += table.nbytes
        return _chunk_file(self.part)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _tasks(store: EpisodeStore) -> dict[str, int]:
    """Task -> task_index, in order of first appearance."""
    tasks: dict[str, int] = {}
    for info in store.episodes:
        tasks.setdefault(info.task or UNSPECIFIED_TASK, len(tasks))
    return tasks


def _write_tasks(tasks: dict[str, int], out: Path) -> None:
    """meta/tasks.parquet as pandas writes a frame indexed by the task: LeRobot reads it with pandas and looks
    tasks up by that index (pandas itself is not needed to write it)."""
    def column(name: str | None, field: str, kind: str, dtype: str) -> dict[str, Any]:
        return {"name": name, "field_name": field, "pandas_type": kind, "numpy_type": dtype, "metadata": None}

    index = "__index_level_0__"
    pandas = {
        "index_columns": [index],
        "column_indexes": [column(None, None, "unicode", "object") | {"metadata": {"encoding": "UTF-8"}}],
        "columns": [column("task_index", "task_index", "int64", "int64"),
                    column(None, index, "unicode", "object")],
        "creator": {"library": "pyarrow", "version": pa.__version__},
    }
    schema = pa.schema([("task_index", pa.int64()), (index, pa.string())],
                       metadata={"pandas": json.dumps(pandas)})  # fmt: skip
    pq.write_table(pa.table([list(tasks.values()), list(tasks)], schema=schema), out / TASKS_PATH)


def _episode_row(
    info: EpisodeInfo, task: str, where: dict[str, int], stats: dict[str, dict[str, np.ndarray]]
) -> dict[str, Any]:
    """One row of the episodes table: LeRobot's columns, then the store's own per-episode metadata."""
    row = {"episode_index": info.index, "tasks": [task], "length": info.length,
           "data/chunk_index": where["chunk_index"], "data/file_index": where["file_index"],
           "dataset_from_index": info.start, "dataset_to_index": info.stop}  # fmt: skip
    row |= {f"stats/{name}/{stat}": value.tolist()
            for name, values in stats.items() for stat, value in values.items()}  # fmt: skip
    return row | {
        "tether/source": info.source,
        "tether/success": -1 if info.success is None else int(info.success),
        "tether/task": info.task,
        "tether/seed": -1 if info.seed is None else info.seed,
        "tether/start_time": info.start_time,
        "tether/notes": info.notes,
    }


def _write_episodes(rows: list[dict[str, Any]], out: Path) -> None:
    """The episodes table, in files of at most the data file size, as LeRobot splits it."""
    table = pa.Table.from_pylist(rows)
    per_file = max(1, int(DATA_FILE_SIZE_IN_MB * 1024**2 * table.num_rows / table.nbytes))
    for part, start in enumerate(range(0, table.num_rows, per_file)):
        where = _chunk_file(part)
        piece = table.slice(start, per_file)
        for name in ("chunk_index", "file_index"):
            piece = piece.append_column(f"meta/episodes/{name}", pa.array([where[name]] * piece.num_rows))
        path = out / EPISODES_PATH.format(**where)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(piece, path)


def _info(
    store: EpisodeStore,
    features: dict[str, Any],
    state: list[_StateSlice],
    tasks: dict[str, int],
    repo_id: str,
) -> dict[str, Any]:
    """info.json: LeRobot's fields as LeRobot writes them, then tether's own entry."""
    rig = store.rig or {}
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": rig.get("name"),
        "total_episodes": store.n_episodes,
        "total_frames": store.n_frames,
        "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILE_SIZE_IN_MB,
        "video_files_size_in_mb": VIDEO_FILE_SIZE_IN_MB,
        "fps": int(store.fps) if store.fps.is_integer() else store.fps,  # LeRobot's fps is an int
        "splits": {"train": f"0:{store.n_episodes}"},
        "data_path": DATA_PATH,
        "video_path": None,
        "features": features,
        "tether": {
            "repo_id": repo_id,
            "state_keys": {s.key: {"start": s.start, "shape": list(s.shape)} for s in state},
            "action_scale": rig.get("arm", {}).get("action_scale"),
            "rig": store.rig,
        },
    }


def export_lerobot(
    store_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    repo_id: str | None = None,
    progress: bool = False,
) -> int:
    """Write the store's committed episodes as a LeRobotDataset v3.0 folder at `out` (new, or an empty
    folder); returns how many. `repo_id` (default `tether/<store name>`) is recorded for whoever publishes
    or loads it."""
    store = EpisodeStore(store_path)
    if not store.n_episodes:
        raise StoreError(f"{store.path}: no committed episodes to export (LeRobot loads no empty dataset)")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StoreError(f"{out}: already exists and is not an empty folder")
    (out / "meta").mkdir(parents=True, exist_ok=True)
    state = _state_slices(store)
    features = _features(store, state)
    schema = _data_schema(features)
    tasks = _tasks(store)
    rows, stats = [], []
    data = _DataFiles(out, schema)
    try:
        with ThreadPoolExecutor() as pool:
            episodes = tqdm(store.episodes, desc="export", unit="episode", disable=None if progress else True)
            for info in episodes:
                task = info.task or UNSPECIFIED_TASK
                columns = _episode_columns(store, info, state, tasks[task])
                where = data.write(_table(columns, schema, pool))
                stats.append(_episode_stats(columns, features))
                rows.append(_episode_row(info, task, where, stats[-1]))
    finally:
        data.close()
    _write_episodes(rows, out)
    _write_tasks(tasks, out)
    pooled = {name: _pooled([s[name] for s in stats]) for name in features}
    as_json = {name: {stat: v.tolist() for stat, v in values.items()} for name, values in pooled.items()}
    _write_json(as_json, out / STATS_PATH)
    _write_json(_info(store, features, state, tasks, repo_id or f"tether/{store.path.stem}"), out / INFO_PATH)
    return store.n_episodes


# --- import ----------------------------------------------------------------------------


def _read_info(root: Path) -> dict[str, Any]:
    """info.json, checked for what import relies on."""
    path = root / INFO_PATH
    if not path.is_file():
        raise StoreError(f"{path}: missing; {root} is not a LeRobotDataset v3.0 folder")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StoreError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(info, dict):
        raise StoreError(f"{path}: expected a JSON object")
    version = info.get("codebase_version")
    if not isinstance(version, str) or not version.startswith("v3."):
        raise StoreError(f"{path}: codebase_version {version!r} is not v3.x (LeRobot's converter updates it)")
    needed = (("fps", (int, float), "number"), ("features", dict, "object"), ("data_path", str, "string"))
    for key, kind, what in needed:
        if not isinstance(info.get(key), kind):
            raise StoreError(f"{path}: '{key}' is missing or not a {what}")
    for name, feature in info["features"].items():
        if not isinstance(feature, dict) or not isinstance(feature.get("dtype"), str) \
                or not isinstance(feature.get("shape"), list):  # fmt: skip
            raise StoreError(f"{path}: feature '{name}' lacks a dtype or a shape")
        if feature["dtype"] == "video":
            raise StoreError(f"{path}: feature '{name}' is a video; videos are not supported yet")
    missing = [name for name in REQUIRED_FEATURES if name not in info["features"]]
    if missing:
        raise StoreError(f"{path}: no '{missing[0]}' feature")
    return info


def _image_shape(feature: dict[str, Any]) -> tuple[int, int, int]:
    """(H, W, 3) of an image feature, also from the (C, H, W) that some older datasets declare."""
    shape = tuple(int(s) for s in feature["shape"])
    channels_first = (feature.get("names") or [""])[0] in ("channel", "channels")
    return (*shape[1:], shape[0]) if channels_first else shape


@dataclass(frozen=True)
class _Mapping:
    """Which LeRobot feature becomes which tether observation key, and the store's observation space."""

    images: dict[str, str]  # feature -> images/<cam>
    state: dict[str, str]  # feature -> state/<name>, observation.state included unless `slices` split it
    slices: list[_StateSlice]
    space: gym.spaces.Dict
    action_dim: int

    @classmethod
    def of(cls, info: dict[str, Any]) -> _Mapping:
        features = info["features"]
        images, state, spaces = {}, {}, {}
        for name, feature in features.items():
            if feature["dtype"] == "image":
                images[name] = IMAGES + name.removeprefix(CAMERAS).removeprefix(OBS)
                spaces[images[name]] = gym.spaces.Box(0, 255, _image_shape(feature), np.uint8)
            elif name.startswith(OBS) and feature["dtype"] != "string":
                state[name] = STATE + name.removeprefix(OBS)
                spaces[state[name]] = gym.spaces.Box(-np.inf, np.inf, tuple(feature["shape"]), np.float32)
        state_keys = (info.get("tether") or {}).get("state_keys") or {}
        slices = []
        if state_keys and STATE_FEATURE in state:
            slices = [_StateSlice(key, int(s["start"]), tuple(s["shape"])) for key, s in state_keys.items()]
            del spaces[state.pop(STATE_FEATURE)]
            spaces |= {s.key: gym.spaces.Box(-np.inf, np.inf, s.shape, np.float32) for s in slices}
        ignored = sorted(set(features) - set(images) - set(state) - set(KNOWN_FEATURES))
        if ignored:
            log.warning("not imported (no place in a tether store): %s", ", ".join(ignored))
        return cls(images, state, slices, gym.spaces.Dict(spaces), int(np.prod(features[ACTION]["shape"])))


def _column(table: pa.Table, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A numeric column as (rows, *shape): scalars, fixed-size and variable lists alike."""
    column = table.column(name).combine_chunks()
    if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type) \
            or pa.types.is_large_list(column.type):  # fmt: skip
        column = column.flatten()
    return column.to_numpy(zero_copy_only=False).reshape(table.num_rows, *shape)


def _flag(table: pa.Table, name: str) -> np.ndarray:
    """A per-step bool feature, False where the dataset lacks it."""
    if name not in table.column_names:
        return np.zeros(table.num_rows, bool)
    return _column(table, name, ()).astype(bool)


def _decode(data: bytes | None, name: str, shape: tuple[int, ...], path: Path) -> np.ndarray:
    """One embedded image as uint8 (H, W, 3)."""
    if data is None:
        raise StoreError(f"{path}: '{name}' holds an image by path only; only embedded image bytes are read")
    if data.startswith(PNG_MAGIC):
        image = imagecodecs.png_decode(data)
    elif data.startswith(JPEG_MAGIC):
        image = imagecodecs.jpeg8_decode(data)
    else:
        raise StoreError(f"{path}: '{name}' holds an image that is neither PNG nor JPEG")
    if image.dtype != np.uint8 or image.shape != shape:
        raise StoreError(f"{path}: '{name}' holds a {image.dtype} {list(image.shape)} image, "
                         f"expected uint8 {list(shape)}")  # fmt: skip
    return image


def _observations(
    table: pa.Table, mapping: _Mapping, path: Path, pool: ThreadPoolExecutor
) -> dict[str, np.ndarray]:
    """One episode's observations by tether key, from its rows of a data file; images decoded on the pool."""
    obs = {}
    for name, key in mapping.images.items():
        data = table.column(name).combine_chunks().field("bytes").to_pylist()
        decoded = pool.map(_decode, data, repeat(name), repeat(mapping.space[key].shape), repeat(path))
        obs[key] = np.stack(list(decoded))
    for name, key in mapping.state.items():
        obs[key] = _column(table, name, mapping.space[key].shape).astype(np.float32)
    if mapping.slices:
        vector = _column(table, STATE_FEATURE, (-1,)).astype(np.float32)
        obs |= {s.key: vector[:, s.start : s.stop].reshape(-1, *s.shape) for s in mapping.slices}
    return obs


def _steps(rows: pa.Table, mapping: _Mapping, path: Path, pool: ThreadPoolExecutor) -> dict[str, Any]:
    """add_steps' arguments, the timestamp aside, from an episode's rows; absent flags are False, reward 0."""
    reward = _column(rows, REWARD, ()) if REWARD in rows.column_names else np.zeros(rows.num_rows, np.float32)
    return {
        "obs": _observations(rows, mapping, path, pool),
        "action": _column(rows, ACTION, (mapping.action_dim,)).astype(np.float32),
        "reward": reward,
        "terminated": _flag(rows, DONE),
        "truncated": _flag(rows, TRUNCATED),
        "intervened": _flag(rows, INTERVENED),
    }


def _read_episodes(root: Path) -> list[dict[str, Any]]:
    """Every episode's row of the episodes table (its stats left out), in episode order."""
    paths = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    if not paths:
        raise StoreError(f"{root / 'meta' / 'episodes'}: no episode files")
    parts = []
    for path in paths:
        names = pq.read_schema(path).names
        missing = [name for name in EPISODE_COLUMNS if name not in names]
        if missing:
            raise StoreError(f"{path}: no column '{missing[0]}'")
        parts.append(pq.read_table(path, columns=[n for n in names if not n.startswith("stats/")]))
    return pa.concat_tables(parts, promote_options="default").sort_by("episode_index").to_pylist()


def _task_names(root: Path) -> list[str]:
    """Task strings by task_index: the tasks table's pandas index (LeRobot writes one), or a `task` column."""
    path = root / TASKS_PATH
    if not path.is_file():
        raise StoreError(f"{path}: missing")
    table = pq.read_table(path)
    pandas = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}"))
    index = (pandas.get("index_columns") or ["task"])[0]
    if "task_index" not in table.column_names or index not in table.column_names:
        raise StoreError(f"{path}: expected a task_index column indexed by the task")
    by_index = dict(zip(table.column("task_index").to_pylist(), table.column(index).to_pylist()))
    return [by_index[i] for i in sorted(by_index)]


class _DataReader:
    """Each episode's rows from the data file the episodes table points it to. Every file's columns are
    checked before anything is written; the last file read is kept (episodes share files)."""

    def __init__(self, root: Path, info: dict[str, Any], episodes: list[dict[str, Any]]) -> None:
        self.needed = list(info["features"])
        self.paths = [root / info["data_path"].format(chunk_index=e["data/chunk_index"],
                                                      file_index=e["data/file_index"])
                      for e in episodes]  # fmt: skip
        for path in dict.fromkeys(self.paths):
            if not path.is_file():
                raise StoreError(f"{path}: missing (meta/episodes points to it)")
            missing = [name for name in self.needed if name not in pq.read_schema(path).names]
            if missing:
                raise StoreError(f"{path}: no column '{missing[0]}'")
        self._path: Path | None = None
        self._table: pa.Table | None = None

    def rows(self, episode: dict[str, Any], path: Path) -> pa.Table:
        if path != self._path:
            self._path, self._table = path, pq.read_table(path, columns=self.needed)
        rows = self._table.filter(pc.equal(self._table.column("episode_index"), episode["episode_index"]))
        if rows.num_rows != episode["length"]:
            raise StoreError(f"{path}: episode {episode['episode_index']} has {rows.num_rows} rows, "
                             f"meta/episodes says {episode['length']}")  # fmt: skip
        return rows.sort_by("frame_index")


def _episode_meta(
    episode: dict[str, Any], tasks: list[str], rows: pa.Table, fps: float, source: str
) -> tuple[dict[str, Any], bool | None]:
    """begin_episode's arguments and the success flag: from the tether/ columns when the dataset has them,
    else the first frame's task and a clock that lays the episodes end to end from 0."""
    if "tether/source" in episode:
        seed, success = episode["tether/seed"], episode["tether/success"]
        begin = {"source": episode["tether/source"], "task": episode["tether/task"],
                 "seed": None if seed < 0 else seed, "notes": episode["tether/notes"],
                 "start_time": episode["tether/start_time"]}  # fmt: skip
        return begin, None if success < 0 else bool(success)
    task_index = rows.column("task_index")[0].as_py()
    task = tasks[task_index] if 0 <= task_index < len(tasks) else ""
    start_time = episode.get("dataset_from_index", 0) / fps
    return {"source": source, "task": task, "seed": None, "notes": "", "start_time": start_time}, None


def import_lerobot(
    path: str | os.PathLike[str],
    out_store: str | os.PathLike[str],
    *,
    source: str = "teleop",
    progress: bool = False,
) -> int:
    """Read a LeRobotDataset v3.0 folder into a new store at `out_store`; returns the episodes written. The
    metadata and every data file's columns are checked first; an error while decoding leaves the store with
    the episodes before it. `source` is recorded for episodes that do not carry tether's own."""
    root = Path(path)
    info = _read_info(root)
    mapping = _Mapping.of(info)
    tasks = _task_names(root)
    episodes = _read_episodes(root)
    reader = _DataReader(root, info, episodes)
    fps = float(info["fps"])
    rig = (info.get("tether") or {}).get("rig")
    writer = EpisodeWriter.create(out_store, mapping.space, mapping.action_dim, fps=fps, rig=rig)
    with writer, ThreadPoolExecutor() as pool:
        located = tqdm(list(zip(episodes, reader.paths)), desc="import", unit="episode",
                       disable=None if progress else True)  # fmt: skip
        for episode, data_path in located:
            rows = reader.rows(episode, data_path)
            begin, success = _episode_meta(episode, tasks, rows, fps, source)
            writer.begin_episode(**begin)
            timestamp = begin["start_time"] + _column(rows, "timestamp", ()).astype(np.float64)
            writer.add_steps(**_steps(rows, mapping, data_path, pool), timestamp=timestamp)
            writer.end_episode(success=success)  # LeRobot keeps no final observation: marked as not recorded
    return len(episodes)
