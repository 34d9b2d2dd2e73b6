"""Logs of commanded arm motion: what `tether sim excite` records and what system identification
and the sim-vs-rig gap read back.

A log is an episode store whose steps hold, besides the usual proprioception, the joint
velocities and the TCP target sent at that step. Row t is the state the command of row t was
sent from, so row t + 1 is the state one control period after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import gymnasium as gym
import numpy as np

from tether import spaces
from tether.datasets.episode import EpisodeArrays
from tether.datasets.store import EpisodeStore, StoreError

JOINT_VEL = spaces.STATE + "joint_vel"  # joint velocities (rad/s)
TCP_TARGET = spaces.STATE + "tcp_target"  # TCP target sent at this step: xyz + quaternion xyzw
LOG_DIMS = {**spaces.PROPRIO_DIMS, JOINT_VEL: 7, TCP_TARGET: 7}
REPLAY_KEYS = (spaces.JOINTS, JOINT_VEL, spaces.TCP_POSE, TCP_TARGET)


class LogError(ValueError):
    """A log that cannot be replayed; the message is one line naming the store and the reason."""


class ExcitableArm(Protocol):
    """An arm driven one control period at a time from a plain loop (the twin, or hardware through its backend)."""

    def read(self) -> tuple[dict[str, np.ndarray], float]:
        """Proprioception (the keys of LOG_DIMS but TCP_TARGET) and its acquisition time."""

    def send(self, position: np.ndarray, quat_xyzw: np.ndarray) -> None:
        """Track this TCP target from now on."""

    def wait(self) -> None:
        """Return one control period after the previous return."""


def log_observation_space() -> gym.spaces.Dict:
    """The observation space of a log store."""
    return gym.spaces.Dict(
        {key: gym.spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32) for key, dim in LOG_DIMS.items()}
    )


@dataclass(frozen=True, eq=False)
class LoggedEpisode:
    """The replayable arrays of one logged episode, float64, time-major (T, 7)."""

    index: int
    joints: np.ndarray
    joint_vel: np.ndarray
    tcp_pose: np.ndarray
    tcp_target: np.ndarray

    def __len__(self) -> int:
        return len(self.joints)

    @classmethod
    def from_arrays(cls, index: int, episode: EpisodeArrays) -> LoggedEpisode:
        """The replayable part of an episode held in memory (as `run_excitation` returns it)."""
        return cls(index, *(np.asarray(episode.obs[key], np.float64) for key in REPLAY_KEYS))


def load_log(path: Path, control_rate_hz: float) -> list[LoggedEpisode]:
    """The episodes of a log store, checked for what a replay at `control_rate_hz` needs."""
    path = Path(path)
    if not path.exists():
        raise LogError(f"{path}: no such log store")
    try:
        store = EpisodeStore(path)
    except StoreError as error:
        raise LogError(str(error)) from None
    missing = [key for key in REPLAY_KEYS if key not in store.spec.obs]
    if missing:
        raise LogError(
            f"{path}: no {', '.join(missing)} in the store; a log needs joints, joint velocities, TCP pose and "
            "the TCP target sent at each step (record one with `tether sim excite`)"
        )
    if not np.isclose(store.fps, control_rate_hz):
        raise LogError(f"{path}: logged at {store.fps:g} Hz, but the rig's control rate is {control_rate_hz:g} Hz")
    episodes = [
        LoggedEpisode(info.index, *(store.load(key, info.start, info.stop).astype(np.float64) for key in REPLAY_KEYS))
        for info in store.episodes
        if info.length >= 2
    ]
    if not episodes:
        raise LogError(f"{path}: no committed episode of at least 2 steps")
    return episodes
