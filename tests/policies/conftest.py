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
