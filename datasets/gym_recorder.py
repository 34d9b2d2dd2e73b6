"""Recording a gymnasium env's episodes into the episode store, step by step (no ROS needed).

Used where a policy or the scripted operator acts in the twin directly, e.g.
`tether sim expert --out STORE`; the ROS recorder node does the same from the transition topic.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

from tether.datasets.store import EpisodeWriter
from tether.types import Observation


class StoreRecorder:
    """Creates (or appends to) a store with the env's observation space and writes its episodes."""

    def __init__(self, env: gym.Env, path: Path, *, source: str, task: str) -> None:
        rig = getattr(env.unwrapped, "rig", None)
        fps = rig.arm.control_rate_hz if rig is not None else env.metadata.get("render_fps", 10)
        action_dim = int(env.action_space.shape[0])
        if (Path(path) / "zarr.json").exists():
            self.writer = EpisodeWriter.open(path, env.observation_space, action_dim)
        else:
            self.writer = EpisodeWriter.create(path, env.observation_space, action_dim, fps=fps, rig=rig)
        self.source, self.task = source, task

    def begin(self, seed: int | None) -> None:
        self.writer.begin_episode(source=self.source, task=self.task, seed=seed)

    def step(self, obs: Observation, action: np.ndarray, reward: float, terminated: bool, truncated: bool,
             *, intervened: bool, policy_action: np.ndarray | None = None) -> None:
        self.writer.add_step(obs, action, reward, terminated, truncated, intervened, policy_action=policy_action)

    def end(self, success: bool, final_obs: Observation) -> int:
        return self.writer.end_episode(success=success, final_obs=final_obs)

    def close(self) -> None:
        self.writer.close()
