"""Export to the layout the Diffusion Policy codebase's `ReplayBuffer` reads, so its training scripts can
compare against a tether policy on the same demos.

    out.zarr/                       zarr format 2 (that codebase reads zarr 2)
      data/action                   (N, A) float32, every step of every episode, concatenated
      data/<camera>                 (N, H, W, 3) uint8, one per `images/<camera>`
      data/<name>                   (N, d) float32, one per `state/<name>`
      meta/episode_ends             (E,) int64, one past each episode's last step

Only committed episodes are exported; rows are copied one episode at a time, so a store of images larger
than memory exports too. Key names drop tether's `images/` and `state/` prefixes (two keys that would then
collide are refused).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import zarr
from tqdm import tqdm

from tether.datasets.store import EpisodeStore, StoreError
from tether.spaces import IMAGES, STATE, is_image_key

ROWS_PER_CHUNK = 1_000
"""Steps per chunk of a low-dimensional array; images are chunked one frame per chunk, as that codebase does."""


def data_name(key: str) -> str:
    """The `data/` array name of an observation key: `images/front` -> `front`, `state/tcp_pose` -> `tcp_pose`."""
    for prefix in (IMAGES, STATE):
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def export_diffusion_policy(store_path: str | os.PathLike[str], out: str | os.PathLike[str], *,
                            progress: bool = False) -> int:
    """Write the store's committed episodes in the ReplayBuffer layout at `out`; returns how many."""
    store = EpisodeStore(store_path)
    keys = [*store.spec.obs, "action"]
    names = {key: data_name(key) for key in keys}
    clashes = sorted({name for name in names.values() if list(names.values()).count(name) > 1})
    if clashes:
        raise StoreError(f"{store.path}: keys {clashes} would share a name once their prefixes are dropped")
    ends = np.cumsum([info.length for info in store.episodes], dtype=np.int64)
    root = zarr.open_group(Path(out), mode="w", zarr_format=2)
    root.create_group("meta").create_array("episode_ends", data=ends)
    data = root.create_group("data")
    total = int(ends[-1]) if len(ends) else 0
    arrays = {}
    for key in keys:
        sample = store.array(f"data/{key}")
        shape = (total, *sample.shape[1:])
        chunks = (1, *sample.shape[1:]) if is_image_key(key) else (ROWS_PER_CHUNK, *sample.shape[1:])
        arrays[key] = data.create_array(names[key], shape=shape, dtype=sample.dtype, chunks=chunks)
    written = 0
    for info in tqdm(store.episodes, desc="export", unit="episode", disable=None if progress else True):
        rows = slice(written, written + info.length)
        for key in keys:
            arrays[key][rows] = store.load(key, info.start, info.stop)
        written += info.length
    return len(store.episodes)
