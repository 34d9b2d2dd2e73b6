"""Running a chunk policy one action per control tick: observation history, receding horizon, inference on a
background thread, optional temporal ensembling.

Ticks count calls to `act`. A chunk inferred from the history ending at tick L holds actions for ticks
L, L+1, ... Re-planning starts every `n_action_steps` ticks:

    synchronous:   infer at L (blocking), run L .. L+n-1, infer at L+n ...
    asynchronous:  infer at L; at L+n-prefetch start the next inference in the background while the current
                   chunk keeps running; when it finishes (tick L' >= its origin) switch to it at index
                   L' - origin, so no action is applied late. The first chunk of an episode is awaited.

`act` in asynchronous mode never waits for the model after the first chunk: if the current chunk runs out
before the next one arrives, it returns a hold (zero motion, the last gripper command) and counts a starved tick.
With `ensemble` (ACT's temporal ensembling) the action for a tick is the mean of every live chunk's action for
that tick, weighted exp(-ensemble * i) with i = 0 for the oldest chunk; otherwise the newest chunk's action.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from tether.types import Observation

log = logging.getLogger(__name__)

ChunkFn = Callable[[dict[str, np.ndarray]], np.ndarray]
"""History (To, ...) per key -> actions (K, A) for ticks origin, origin + 1, ..."""


@dataclass
class _Chunk:
    origin: int
    actions: np.ndarray  # (K, A)

    def covers(self, tick: int) -> bool:
        return self.origin <= tick < self.origin + len(self.actions)


class ChunkedExecutor:
    """A `Policy` for the actor node (observation_keys, act) over a function that predicts action chunks."""

    def __init__(
        self,
        predict: ChunkFn,
        observation_keys: Sequence[str],
        *,
        n_obs_steps: int,
        n_action_steps: int,
        asynchronous: bool = True,
        prefetch: int = 2,
        ensemble: float | None = None,
        to_action: Callable[[Observation, np.ndarray], np.ndarray] | None = None,
        on_episode_start: Callable[[Observation], object] | None = None,
    ) -> None:
        if not 0 <= prefetch < n_action_steps:
            raise ValueError(f"prefetch {prefetch} must be in [0, n_action_steps={n_action_steps})")
        self.predict = predict
        self.observation_keys = tuple(observation_keys)
        self.n_obs_steps, self.n_action_steps = n_obs_steps, n_action_steps
        self.asynchronous, self.prefetch, self.ensemble = asynchronous, prefetch if asynchronous else 0, ensemble
        self.to_action = to_action
        """Maps a chunk entry to this tick's action given this tick's observation (a policy whose chunks hold
        targets, not actions); None: entries are actions."""
        self.on_episode_start = on_episode_start
        """Called with an episode's first observation (its policy keys) before the episode's first inference."""
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-inference") if asynchronous else None
        self._lock = threading.Lock()
        self.starved = 0
        """Ticks that found no action (asynchronous inference slower than a chunk): a hold was returned."""
        self.reset()

    def reset(self) -> None:
        """Start a new episode: forget history and chunks; an inference still running is ignored when it ends."""
        with self._lock:
            self._episode = getattr(self, "_episode", 0) + 1
        self._history: deque[Observation] = deque(maxlen=self.n_obs_steps)
        self._chunks: list[_Chunk] = []
        self._pending: tuple[int, Future] | None = None
        self._next_plan = 0
        self._tick = -1
        self._last: np.ndarray | None = None
        self._awaiting_first = self.asynchronous

    def act(self, obs: Observation) -> np.ndarray:
        """The action for this tick, in physical units."""
        self._tick += 1
        frame = {key: np.asarray(obs[key]) for key in self.observation_keys}
        if not self._history:  # the first observation of an episode stands in for the missing past
            self._history.extend([frame] * (self.n_obs_steps - 1))
            if self.on_episode_start is not None:
                self.on_episode_start(frame)
        self._history.append(frame)
        self._collect()
        if self._tick >= self._next_plan and self._pending is None:
            self._plan()
        if self._awaiting_first:  # nothing to run yet: the episode's first chunk is awaited
            self._collect(wait=True)
            self._awaiting_first = False
        self._chunks = [c for c in self._chunks if c.origin + len(c.actions) > self._tick]
        live = [c for c in self._chunks if c.covers(self._tick)]
        if not live:
            self.starved += 1
            return self._hold()
        if self.ensemble is None:
            action = live[-1].actions[self._tick - live[-1].origin]
        else:
            weights = np.exp(-self.ensemble * np.arange(len(live)))
            stacked = np.stack([c.actions[self._tick - c.origin] for c in live])
            action = (weights[:, None] * stacked).sum(0) / weights.sum()
        if self.to_action is not None:
            action = self.to_action(obs, action)
        self._last = np.asarray(action, np.float32)
        return self._last

    def close(self) -> None:
        """Stop the inference thread (waits for a running inference)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _plan(self) -> None:
        """Start inference from the current history; it plans for ticks from now on."""
        history = {key: np.stack([f[key] for f in self._history]) for key in self.observation_keys}
        origin = self._tick
        self._next_plan = origin + self.n_action_steps - self.prefetch
        if self._pool is None:
            self._chunks.append(_Chunk(origin, np.asarray(self.predict(history), np.float32)))
            return
        episode = self._episode
        self._pending = (origin, self._pool.submit(self._guarded, history, episode))

    def _guarded(self, history: dict[str, np.ndarray], episode: int) -> np.ndarray | None:
        result = np.asarray(self.predict(history), np.float32)
        with self._lock:
            return result if episode == self._episode else None

    def _collect(self, wait: bool = False) -> None:
        """Adopt a finished background chunk; with `wait`, block until it finishes."""
        if self._pending is None:
            return
        origin, future = self._pending
        if not (wait or future.done()):
            return
        self._pending = None
        actions = future.result()
        if actions is None:
            return
        if self.ensemble is None:
            self._chunks = []  # newest chunk wins: drop the older ones
        self._chunks.append(_Chunk(origin, actions))
        # Re-plan n_action_steps after the tick this chunk was adopted, so a slow chunk still runs n steps.
        self._next_plan = max(self._next_plan, self._tick + self.n_action_steps - self.prefetch)

    def _hold(self) -> np.ndarray:
        """No chunk covers this tick: zero motion, the last gripper command (gripper is the last action dim)."""
        if self._last is None:
            raise RuntimeError("chunked executor: no action for the first tick of an episode")
        hold = np.zeros_like(self._last)
        hold[-1] = self._last[-1]
        return hold
