"""Small observation spaces and random batches for learner tests (no simulator needed)."""

from __future__ import annotations

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

from tether.spaces import GRIPPER, TCP_POSE
from tether.types import Batch

torch.set_num_threads(1)

ACTION_DIM = 4


def state_space() -> gym.spaces.Dict:
    return gym.spaces.Dict(
        {
            TCP_POSE: gym.spaces.Box(-np.inf, np.inf, (7,), np.float32),
            GRIPPER: gym.spaces.Box(-np.inf, np.inf, (1,), np.float32),
        }
    )


def pixel_space(cameras: tuple[str, ...] = ("front",), size: int = 32) -> gym.spaces.Dict:
    space = dict(state_space().spaces)
    for camera in cameras:
        space[f"images/{camera}"] = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
    return gym.spaces.Dict(space)


def random_obs(space: gym.spaces.Dict, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    obs = {}
    for key, box in space.spaces.items():
        if box.dtype == np.uint8:
            obs[key] = rng.integers(0, 256, (n, *box.shape), dtype=np.uint8)
        else:
            obs[key] = rng.normal(size=(n, *box.shape)).astype(np.float32)
    return obs


def random_batch(space: gym.spaces.Dict, n: int, rng: np.random.Generator) -> Batch:
    return Batch(
        obs=random_obs(space, n, rng),
        action=rng.uniform(-1, 1, (n, ACTION_DIM)).astype(np.float32),
        reward=(rng.random(n) < 0.3).astype(np.float32),
        next_obs=random_obs(space, n, rng),
        terminated=rng.random(n) < 0.1,
        intervened=np.zeros(n, bool),
    )


@pytest.fixture
def h() -> SimpleNamespace:
    """The helpers above, for tests (importlib mode cannot import conftest by name)."""
    return SimpleNamespace(
        ACTION_DIM=ACTION_DIM, state_space=state_space, pixel_space=pixel_space,
        random_obs=random_obs, random_batch=random_batch,
    )


class ToyReach(gym.Env):
    """A tiny, fast stand-in for a twin task: move a point to a goal, then close the gripper there.

    Same observation keys and action layout as the twin (state/tcp_pose, state/gripper; 3 motion + gripper),
    sparse reward 1 with terminated on success, truncation after `episode_length` steps.
    """

    GOAL = np.array([0.3, -0.2, 0.1])

    def __init__(self, episode_length: int = 30) -> None:
        self.observation_space = state_space()
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self.episode_length = episode_length

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-0.3, 0.3, 3)
        self.opening, self.steps = 1.0, 0
        return self._obs(), {"success": False}

    def step(self, action: np.ndarray):
        self.pos = np.clip(self.pos + 0.05 * np.clip(action[:3], -1, 1), -0.5, 0.5)
        if abs(action[-1]) >= 0.5:
            self.opening = 0.0 if action[-1] > 0 else 1.0
        self.steps += 1
        success = bool(np.linalg.norm(self.pos - self.GOAL) < 0.05 and self.opening == 0.0)
        truncated = self.steps >= self.episode_length and not success
        return self._obs(), float(success), success, truncated, {"success": success}

    def render(self) -> None:
        return None  # like the twin made without render_mode

    def _obs(self) -> dict[str, np.ndarray]:
        pose = np.concatenate([self.pos, [0.0, 0.0, 0.0, 1.0]]).astype(np.float32)
        return {"state/tcp_pose": pose, "state/gripper": np.array([self.opening], np.float32)}


class ToyExpert:
    """Moves straight to the goal and closes there; the Expert protocol of tether.policies.sac_loop."""

    def reset(self) -> None:
        pass

    def act(self, env: gym.Env) -> np.ndarray:
        toy = env.unwrapped
        error = ToyReach.GOAL - toy.pos
        close = 1.0 if np.linalg.norm(error) < 0.04 else -1.0
        return np.append(np.clip(error / 0.05, -1, 1), close).astype(np.float32)


@pytest.fixture
def toy() -> SimpleNamespace:
    return SimpleNamespace(Env=ToyReach, Expert=ToyExpert)
