"""Moving episodes between the store and replay buffers, and saving a learner's buffers.

    buffer = replay_from_store("demos.zarr", capacity=100_000)   # demos into a fresh buffer
    fill_replay(buffer, EpisodeStore("more.zarr"))               # or into an existing one
    save_replay(buffer, "run/online.zarr", source="hil", fps=10)  # checkpoint a buffer
    buffer = load_replay("run/online.zarr")                      # resume: same content, same slots

A saved buffer is an ordinary episode store (plain zarr, verify-able) whose attrs also hold the
buffer's capacity and slot layout, so a restored buffer samples exactly what the original would
under the same seed.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tether.config import RigConfig
from tether.datasets.replay import ReplayBuffer
from tether.datasets.store import EpisodeStore, EpisodeWriter, StoreError, StoreSpec

REPLAY_ATTR = "replay"


def fill_replay(buffer: ReplayBuffer, store: EpisodeStore, episodes: Iterable[int] | None = None) -> int:
    """Add the store's committed episodes (all, or the given indices) to `buffer`; returns the steps
    added. The store may hold more observation keys than the buffer (a recording with cameras and
    task state feeds a state-only learner); those are not read. An episode without a recorded
    final observation loses its last step unless it terminated."""
    wanted = StoreSpec.from_space(buffer.observation_space, buffer.action_dim)
    stored = StoreSpec(obs={k: v for k, v in store.spec.obs.items() if k in wanted.obs}, action_dim=store.spec.action_dim)
    differences = stored.differences(wanted)
    if differences:
        raise StoreError(f"{store.path}: the replay buffer's spec differs: {'; '.join(differences)}")
    indices = list(range(store.n_episodes) if episodes is None else episodes)
    added = 0
    for index, episode in zip(indices, store.iter_episodes(indices, keys=list(wanted.obs)), strict=True):
        if not store.episodes[index].has_final_obs and not episode.terminated[-1]:
            episode = episode.without_last_step()
        buffer.add_episode(episode)
        added += len(episode)
    return added


def replay_from_store(path: str | os.PathLike[str], capacity: int | None = None) -> ReplayBuffer:
    """A buffer holding a store's episodes; capacity defaults to exactly enough for all of them."""
    store = EpisodeStore(path)
    needed = store.n_frames + store.n_episodes  # one extra slot per episode for its final obs
    buffer = ReplayBuffer(store.observation_space, store.spec.action_dim, capacity or max(needed, 2))
    fill_replay(buffer, store)
    return buffer


def save_replay(
    buffer: ReplayBuffer,
    path: str | os.PathLike[str],
    *,
    source: str,
    fps: float,
    rig: RigConfig | Mapping[str, Any] | None = None,
) -> None:
    """Write the buffer's episodes as a store at `path`. An earlier save is replaced only once the new
    one is complete: a crash mid-save leaves it in place (or, between the two renames that swap
    them, beside it as `.NAME.previous-*`)."""
    path = Path(path)
    first_slot, filled = buffer.layout
    layout = {REPLAY_ATTR: {"capacity": buffer.capacity, "first_slot": first_slot, "filled": filled}}
    staging = path.parent / f".{path.name}.saving-{uuid.uuid4().hex[:8]}"
    try:
        with EpisodeWriter.create(
            staging, buffer.observation_space, buffer.action_dim, fps, rig, attrs=layout
        ) as writer:
            writer.write_episodes(buffer.episodes(), source=source)
        previous = path.parent / f".{path.name}.previous-{uuid.uuid4().hex[:8]}"
        if path.exists():
            path.rename(previous)
        staging.rename(path)
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_replay(path: str | os.PathLike[str]) -> ReplayBuffer:
    """A buffer saved by `save_replay`, with its capacity and slot layout."""
    store = EpisodeStore(path)
    saved = store.attrs.get(REPLAY_ATTR)
    if saved is None:
        raise StoreError(f"{store.path}: not a saved replay buffer (no '{REPLAY_ATTR}' attrs); use replay_from_store")
    buffer = ReplayBuffer(store.observation_space, store.spec.action_dim, int(saved["capacity"]))
    buffer.restore_layout(int(saved["first_slot"]), int(saved["filled"]))
    fill_replay(buffer, store)
    return buffer
