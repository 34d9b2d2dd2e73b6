"""One episode as time-major arrays: the unit the store writes and reads and replay buffers exchange.

An episode of T steps holds T observations (the one each action was taken from) and the
true final observation after the last action, so next observations are never stored twice:
step t's next observation is `obs[t + 1]` for t < T - 1 and `final_obs` for t = T - 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tether.types import Observation, Transition


@dataclass(frozen=True, eq=False)  # arrays do not compare to one bool
class EpisodeArrays:
    """T steps of one episode; every per-step array has leading axis T."""

    obs: Observation  # each (T, ...)
    final_obs: Observation  # each (...): the observation after the last action
    action: np.ndarray  # float32 (T, A), executed
    policy_action: np.ndarray  # float32 (T, A), NaN rows where no policy proposed
    reward: np.ndarray  # float32 (T,)
    terminated: np.ndarray  # bool (T,)
    truncated: np.ndarray  # bool (T,)
    intervened: np.ndarray  # bool (T,)
    timestamp: np.ndarray | None = None  # float64 (T,), acquisition time of obs[t], if known

    def __len__(self) -> int:
        return len(self.action)

    def without_last_step(self) -> EpisodeArrays:
        """The first T - 1 steps, with obs[T - 1] as their final observation (for an episode whose
        true final observation was not recorded: its last step has no known next observation)."""
        head = slice(0, len(self) - 1)
        return EpisodeArrays(
            obs={key: value[head] for key, value in self.obs.items()},
            final_obs={key: value[-1] for key, value in self.obs.items()},
            action=self.action[head],
            policy_action=self.policy_action[head],
            reward=self.reward[head],
            terminated=self.terminated[head],
            truncated=self.truncated[head],
            intervened=self.intervened[head],
            timestamp=None if self.timestamp is None else self.timestamp[head],
        )

    def next_obs(self, t: int) -> Observation:
        """The observation after step t."""
        if t == len(self) - 1:
            return self.final_obs
        return {key: value[t + 1] for key, value in self.obs.items()}

    def transitions(self) -> Iterator[Transition]:
        """The steps as `Transition`s, in order (views into these arrays, no copies)."""
        for t in range(len(self)):
            proposed = self.policy_action[t]
            yield Transition(
                obs={key: value[t] for key, value in self.obs.items()},
                action=self.action[t],
                reward=float(self.reward[t]),
                next_obs=self.next_obs(t),
                terminated=bool(self.terminated[t]),
                truncated=bool(self.truncated[t]),
                intervened=bool(self.intervened[t]),
                policy_action=None if np.isnan(proposed).all() else proposed,
            )
