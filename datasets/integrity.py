"""What a store says about itself, checked before anything trusts it.

A store's attrs, array metadata and shard indexes are data like any other: a bad disk, a cut copy or
a hand edit can make them claim a shape of terabytes, a dtype the schema never had or chunks that
are not there. Readers check them here before allocating or decoding anything; `verify` reports every
finding. Each check returns one-line findings and never reads more than the few bytes it checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

MAX_CHUNK_BYTES = 1 << 30
"""No chunk (or shard) of a store tether writes comes near this (image shards are ~4 MiB); a larger one is a
metadata claim that reading would have to allocate."""
MAX_FRAME_BYTES = 1 << 28
"""One observation of one key (a 4K RGB frame is 25 MB)."""
OBS_DTYPES = ("uint8", "float32")
EMPTY = np.uint64(2**64 - 1)  # a shard index entry (offset, nbytes) of a chunk that is not stored


@dataclass(frozen=True)
class Damage:
    """One finding: what is wrong, and the first committed episode it makes unusable (None: the store as a
    whole, e.g. its attrs or the episode index itself)."""

    what: str
    episode: int | None = None


def _is_count(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _obs_spec_problem(spec: Any) -> str | None:
    if not isinstance(spec, dict) or not spec:
        return "expected a non-empty mapping of observation key -> {shape, dtype}"
    for key, entry in spec.items():
        if not isinstance(entry, dict) or entry.get("dtype") not in OBS_DTYPES:
            return f"'{key}': expected {{shape, dtype}} with dtype one of {', '.join(OBS_DTYPES)}"
        shape = entry.get("shape")
        if not isinstance(shape, list) or not all(_is_count(n, 1) for n in shape):
            return f"'{key}': shape must be a list of positive integers, got {shape!r:.60}"
        if math.prod(shape) * np.dtype(entry["dtype"]).itemsize > MAX_FRAME_BYTES:
            return f"'{key}': shape {shape} claims more than {MAX_FRAME_BYTES >> 20} MiB per frame"
    return None


ATTR_CHECKS: dict[str, tuple[str, Any]] = {  # attr -> (what it must be, check returning True when fine)
    "format": ("a string", lambda v: isinstance(v, str)),
    "schema_version": ("an integer", lambda v: _is_count(v, 0)),
    "action_dim": ("an integer >= 1", lambda v: _is_count(v, 1)),
    "fps": ("a finite number > 0", lambda v: _is_number(v) and v > 0),
    "chunk_steps": ("an integer >= 1", lambda v: _is_count(v, 1)),
    "image_codec": ("a mapping with a 'name'", lambda v: isinstance(v, dict) and isinstance(v.get("name"), str)),
    "rig": ("a mapping or null", lambda v: v is None or isinstance(v, dict)),
}


def attr_problems(attrs: Mapping[str, Any]) -> list[str]:
    """Every root attribute the store relies on, with the type it must have."""
    problems = []
    for name, (what, check) in ATTR_CHECKS.items():
        if name not in attrs:
            problems.append(f"zarr.json attribute '{name}' is missing")
        elif not check(attrs[name]):
            problems.append(f"zarr.json attribute '{name}' must be {what}, got {attrs[name]!r:.60}")
    spec_problem = _obs_spec_problem(attrs.get("obs_spec"))
    if spec_problem:
        problems.append(f"zarr.json attribute 'obs_spec': {spec_problem}")
    return problems


def _dtype_matches(array: zarr.Array, dtype: str) -> bool:
    return array.dtype.kind in "OTU" if dtype == "str" else array.dtype == np.dtype(dtype)


def array_problems(array_path: str, array: zarr.Array, dtype: str, tail: tuple[int, ...]) -> list[str]:
    """The array's dtype and per-row shape are the schema's, and one chunk (or shard) stays within
    MAX_CHUNK_BYTES; its length is checked against the episode index by the caller."""
    if not _dtype_matches(array, dtype):
        return [f"{array_path}: dtype {array.dtype} is not the schema's {dtype}"]
    if tuple(array.shape[1:]) != tail:
        return [f"{array_path}: rows of shape {list(array.shape[1:])} are not the schema's {list(tail)}"]
    unit = array.shards or array.chunks
    if tuple(unit[1:]) != tail or tuple(array.chunks[1:]) != tail:
        return [f"{array_path}: chunks {list(array.chunks)} do not hold whole rows of {list(tail)}"]
    if math.prod(unit) * max(array.dtype.itemsize, 1) > MAX_CHUNK_BYTES:
        return [f"{array_path}: a chunk of {list(unit)} claims more than {MAX_CHUNK_BYTES >> 20} MiB"]
    if array.shards is not None and _shard_index_size(array) is None:
        return [f"{array_path}: a shard layout tether does not write (index not at the end, or not crc32c)"]
    return []


def _shard_index_size(array: zarr.Array) -> int | None:
    """Bytes of a shard's index (16 per inner chunk + crc32c), when it sits at the end as tether writes it."""
    codec = array.metadata.codecs[0]
    names = [type(c).__name__ for c in getattr(codec, "index_codecs", ())]
    if getattr(getattr(codec, "index_location", None), "value", None) != "end" or names[-1:] != ["Crc32cCodec"]:
        return None
    return array.shards[0] // array.chunks[0] * 16 + 4


def storage_units(array: zarr.Array, start: int, stop: int) -> list[tuple[int, str]]:
    """(first row, storage key) of every stored object (chunk, or shard) holding rows [start, stop)."""
    unit = (array.shards or array.chunks)[0]
    zeros = [0] * (array.ndim - 1)
    return [(i * unit, array.metadata.encode_chunk_key((i, *zeros))) for i in range(start // unit, -(-stop // unit))]


def missing_inner_chunks(array: zarr.Array, index_tail: bytes, first: int, start: int, stop: int) -> list[int]:
    """Rows in [start, stop) whose chunk a shard's index (`index_tail`: the shard's last bytes) marks as not
    stored, for the shard whose first row is `first`."""
    size = _shard_index_size(array)
    if size is None or len(index_tail) < size:
        return [max(start, first)]
    entries = np.frombuffer(index_tail[-size:-4], "<u8").reshape(-1, 2)
    rows = array.chunks[0]
    return [
        first + j * rows
        for j, (offset, nbytes) in enumerate(entries)
        if offset == EMPTY and nbytes == EMPTY and start < first + (j + 1) * rows and first + j * rows < stop
    ]


def repair_hint(damage: list[Damage]) -> str:
    """What `tether data repair` can recover from `damage`: the episodes before the first damaged one, unless
    the damage is to the store as a whole."""
    if any(d.episode is None for d in damage):
        return "tether data repair cannot fix this; restore the store from a copy"
    first = min(d.episode for d in damage if d.episode is not None)
    kept = f"keeps episodes 0-{first - 1}" if first else "keeps none of its episodes"
    return f"`tether data repair --drop-damaged` {kept} (`tether data verify` lists all damage)"
