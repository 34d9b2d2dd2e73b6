"""Packing a store into one zip file for read-only sharing (zarr's ZipStore layout: one zip member per key).

The zip holds exactly the committed episodes: each array's metadata with its shape cut to the committed
rows, and the stored chunk / shard objects of those rows copied byte for byte (no re-encoding, so images
stay bit-exact and packing is as fast as the disk). A writer may keep appending meanwhile: the commit point
is read first, and objects holding committed rows are only ever replaced whole with those rows unchanged.

    pack("demos.zarr", "demos.zip")
    EpisodeStore("demos.zip")                                            # tether reads it as a store
    zarr.open_group(zarr.storage.ZipStore("demos.zip", mode="r"), mode="r")  # so does plain zarr
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tether.datasets.store import ENDS, EPISODES, FINAL, EpisodeStore, StoreError

METADATA = "zarr.json"


@dataclass(frozen=True)
class PackReport:
    episodes: int
    frames: int
    objects: int
    bytes: int


def pack(source: str | os.PathLike[str], out: str | os.PathLike[str]) -> PackReport:
    """Write the committed episodes of the directory store `source` into the new zip file `out`."""
    source, out = Path(source), Path(out)
    store = EpisodeStore(source)
    if store.packed:
        raise StoreError(f"{source}: already a packed store")
    if out.exists():
        raise StoreError(f"{out}: already exists; choose a new file")
    if out.suffix != ".zip":
        raise StoreError(f"{out}: a packed store's name ends in .zip")
    arrays = set(store.array_paths())
    partial = out.with_name(out.name + ".partial")
    objects = 0
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for document in sorted(source.rglob(METADATA)):
                key = document.relative_to(source).parent.as_posix()
                metadata = json.loads(document.read_text())
                if key in arrays:
                    rows = store.n_episodes if key.startswith((FINAL, EPISODES, ENDS)) else store.n_frames
                    objects += _pack_array(archive, source, key, metadata, rows, store)
                archive.writestr(f"{key}/{METADATA}".removeprefix("./"), json.dumps(metadata, indent=2))
                objects += 1
        partial.rename(out)
    finally:
        partial.unlink(missing_ok=True)
    return PackReport(store.n_episodes, store.n_frames, objects, out.stat().st_size)


def _pack_array(archive: zipfile.ZipFile, source: Path, key: str, metadata: dict, rows: int,
                store: EpisodeStore) -> int:
    """Copy the objects of an array's first `rows` rows and cut its shape (in `metadata`) to them."""
    array = store.array(key)
    unit = (array.shards or array.chunks)[0]
    metadata["shape"][0] = rows
    copied = 0
    for i in range(math.ceil(rows / unit)):
        chunk_key = array.metadata.encode_chunk_key((i, *([0] * (array.ndim - 1))))
        stored = source / key / chunk_key
        if not stored.is_file():  # committed rows are always written (write_empty_chunks)
            raise StoreError(f"{source}: {key}/{chunk_key} of committed rows is missing; see tether data verify")
        archive.write(stored, f"{key}/{chunk_key}")
        copied += 1
    return copied
