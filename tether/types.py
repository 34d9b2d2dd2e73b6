"""Records that cross package boundaries: one environment step, and a batch of them for learning."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Self

import numpy as np

Observation = dict[str, np.ndarray]
"""`images/<camera>` uint8 (H, W, 3) and `state/<name>` float32 (d,), see tether.spaces."""

EPISODE_SOURCES = ("teleop", "policy", "hil", "scripted", "sim")

ACTION_TAKEN = "action_taken"
"""`info` key of an env whose executed action can differ from the one it was given (a clip, a bound): the
action, in the env's own action space, that reproduces what was executed. The learner stores it instead."""


class DeviceError(RuntimeError):
    """A device that is missing, unplugged or failing; the message names it and the reason."""


class Device(ABC):
    """Hardware (or its twin stand-in) as a context manager: connect on enter, release on exit."""

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def connect(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


@dataclass(frozen=True)
class Transition:
    """One control step as the actor saw it. `next_obs` is the true next (or final) observation."""

    obs: Observation
    action: np.ndarray  # float32 (A,), the action executed (after any human override)
    reward: float
    next_obs: Observation
    terminated: bool  # success/failure: no bootstrap past it
    truncated: bool  # time limit or operator stop: bootstrap
    intervened: bool  # a human produced `action`
    policy_action: np.ndarray | None = None  # what the policy proposed, if a policy ran


@dataclass(frozen=True)
class Batch:
    """A sampled minibatch, leading axis B. Arrays stay numpy; learners move them to their device."""

    obs: Observation  # each (B, ...)
    action: np.ndarray  # float32 (B, A)
    reward: np.ndarray  # float32 (B,)
    next_obs: Observation  # each (B, ...)
    terminated: np.ndarray  # bool (B,): 1 - bootstrap mask
    intervened: np.ndarray  # bool (B,)
