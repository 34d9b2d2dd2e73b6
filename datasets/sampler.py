"""Sampling training data out of an episode store: RL transitions and diffusion-policy windows.

Both read the committed episodes once (into memory by default, as Diffusion Policy does; with
`cache=False` every sample reads its frames from zarr) and never pair frames across episodes.

RL transitions: (obs, action, reward, next_obs, terminated, intervened) as `tether.types.Batch`.
The next observation of a step is the next frame of its episode, or the episode's stored final
observation after its last step, so no image is stored twice. The last step of an episode whose
final observation was not recorded is skipped, unless it terminated (no bootstrap, next obs unused).

Diffusion windows, with n_obs_steps = 2, horizon = 5 around the current step t:

    frame:      t-1   t    t+1  t+2  t+3
    obs:        [o    o]                       n_obs_steps observations ending at t
    action:     [a    a    a    a    a]        horizon actions starting at t - n_obs_steps + 1

Indices outside the episode repeat its first or last frame (edge padding) and are flagged in
`action_is_pad`. Windows start from `pad_before` frames before an episode to `pad_after` frames
past its end (defaults: n_obs_steps - 1 and horizon - n_obs_steps, so every step is once the
current step).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import zarr

from tether.datasets.store import EpisodeStore
from tether.types import Batch

ArrayLike = np.ndarray | zarr.Array


def _take(array: ArrayLike, rows: np.ndarray) -> np.ndarray:
    """array[rows] for any shape of integer `rows`, reading each distinct row once from zarr."""
    if isinstance(array, np.ndarray):
        return array[rows]
    unique, inverse = np.unique(rows, return_inverse=True)
    values = array.get_orthogonal_selection((unique,))
    return values[inverse.reshape(rows.shape)]


def _frames(store: EpisodeStore, keys: Sequence[str], cache: bool) -> dict[str, ArrayLike]:
    if cache:
        return {key: store.load(key) for key in keys}
    return {key: store.lazy(key) for key in keys}


def _obs_keys(store: EpisodeStore, obs_keys: Sequence[str] | None) -> list[str]:
    keys = list(store.spec.obs) if obs_keys is None else list(obs_keys)
    unknown = [key for key in keys if key not in store.spec.obs]
    if unknown:
        raise ValueError(f"{store.path}: no observation {unknown} (known: {', '.join(store.spec.obs)})")
    return keys


class TransitionSampler:
    """Uniform RL transitions from a store's committed episodes."""

    def __init__(self, store: EpisodeStore, *, obs_keys: Sequence[str] | None = None, cache: bool = True) -> None:
        self.obs_keys = _obs_keys(store, obs_keys)
        self._frames = _frames(store, [*self.obs_keys, "action", "reward", "terminated", "intervened"], cache)
        self._final = {key: store.final_obs(key) for key in self.obs_keys}
        self._ends = store.episode_ends.copy()
        terminated = store.load("terminated")
        usable = np.ones(store.n_frames, bool)
        for info in store.episodes:
            if not info.has_final_obs and not terminated[info.stop - 1]:
                usable[info.stop - 1] = False
        self._rows = np.flatnonzero(usable)
        if not len(self._rows):
            raise ValueError(f"{store.path}: no transitions to sample (no committed steps with a next observation)")

    def __len__(self) -> int:
        return len(self._rows)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """`batch_size` transitions drawn uniformly with replacement."""
        rows = self._rows[rng.integers(0, len(self._rows), size=batch_size)]
        episode = np.searchsorted(self._ends, rows, side="right")
        last = rows + 1 == self._ends[episode]
        successor = np.where(last, rows, rows + 1)  # placeholder row for last steps, replaced below
        next_obs = {}
        for key in self.obs_keys:
            value = _take(self._frames[key], successor)
            value[last] = self._final[key][episode[last]]
            next_obs[key] = value
        return Batch(
            obs={key: _take(self._frames[key], rows) for key in self.obs_keys},
            action=_take(self._frames["action"], rows),
            reward=_take(self._frames["reward"], rows),
            next_obs=next_obs,
            terminated=_take(self._frames["terminated"], rows),
            intervened=_take(self._frames["intervened"], rows),
        )


class SequenceSampler:
    """Diffusion-policy training windows; a map-style dataset (`len`, `[i]`) and a batch sampler."""

    def __init__(
        self,
        store: EpisodeStore,
        n_obs_steps: int,
        horizon: int,
        *,
        pad_before: int | None = None,
        pad_after: int | None = None,
        obs_keys: Sequence[str] | None = None,
        cache: bool = True,
        actions: np.ndarray | None = None,
    ) -> None:
        """`actions` (n_frames, A), when given, are windowed instead of the store's (targets derived from them)."""
        if not 1 <= n_obs_steps <= horizon:
            raise ValueError(f"need 1 <= n_obs_steps <= horizon, got n_obs_steps={n_obs_steps}, horizon={horizon}")
        self.n_obs_steps, self.horizon = n_obs_steps, horizon
        self.pad_before = n_obs_steps - 1 if pad_before is None else pad_before
        self.pad_after = horizon - n_obs_steps if pad_after is None else pad_after
        if not (0 <= self.pad_before < horizon and 0 <= self.pad_after < horizon):
            raise ValueError(f"pad_before and pad_after must be in [0, horizon), got {self.pad_before}, {self.pad_after}")
        self.obs_keys = _obs_keys(store, obs_keys)
        self._frames = _frames(store, self.obs_keys if actions is not None else [*self.obs_keys, "action"], cache)
        if actions is not None:
            if len(actions) != store.n_frames:
                raise ValueError(f"{store.path}: {len(actions)} actions given for {store.n_frames} frames")
            self._frames["action"] = np.asarray(actions)
        starts, firsts, lasts = [], [], []
        for info in store.episodes:
            window_starts = np.arange(info.start - self.pad_before, info.stop - horizon + self.pad_after + 1)
            starts.append(window_starts)
            firsts.append(np.full(len(window_starts), info.start))
            lasts.append(np.full(len(window_starts), info.stop - 1))
        if not sum(len(s) for s in starts):
            raise ValueError(f"{store.path}: no windows of horizon {horizon} fit the committed episodes")
        self._starts, self._first, self._last = (np.concatenate(a).astype(np.int64) for a in (starts, firsts, lasts))

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        """Window `index`: `obs/<key>` (n_obs_steps, ...), `action` (horizon, A), `action_is_pad` (horizon,)."""
        return {key: value[0] for key, value in self._windows(np.array([index])).items()}

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """`batch_size` windows drawn uniformly with replacement; arrays have leading axis B."""
        return self._windows(rng.integers(0, len(self._starts), size=batch_size))

    def _windows(self, windows: np.ndarray) -> dict[str, Any]:
        raw = self._starts[windows, None] + np.arange(self.horizon)  # (B, horizon) frame indices
        rows = np.clip(raw, self._first[windows, None], self._last[windows, None])  # edge padding
        out = {f"obs/{key}": _take(self._frames[key], rows[:, : self.n_obs_steps]) for key in self.obs_keys}
        out["action"] = _take(self._frames["action"], rows)
        out["action_is_pad"] = rows != raw
        return out
