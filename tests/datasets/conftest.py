"""Episodes whose every observation says where it came from, so a test can check any pairing."""

from __future__ import annotations

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

from tether.datasets.episode import EpisodeArrays

ACTION_DIM = 4
IMAGE_SHAPE = (8, 6, 3)


def marked_space(image_shape: tuple[int, int, int] = IMAGE_SHAPE) -> gym.spaces.Dict:
    """One camera and a `state/mark` of (episode id, step) plus a tcp pose."""
    return gym.spaces.Dict(
        {
            "images/front": gym.spaces.Box(0, 255, shape=image_shape, dtype=np.uint8),
            "state/mark": gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32),
            "state/tcp_pose": gym.spaces.Box(-np.inf, np.inf, shape=(7,), dtype=np.float32),
        }
    )


def marked_obs(episode: int, step: int, image_shape: tuple[int, int, int] = IMAGE_SHAPE) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([episode, step])
    return {
        "images/front": rng.integers(0, 256, size=image_shape, dtype=np.uint8),
        "state/mark": np.array([episode, step], np.float32),
        "state/tcp_pose": rng.standard_normal(7).astype(np.float32),
    }


def marked_episode(
    episode: int,
    length: int,
    *,
    terminated: bool = True,
    truncated: bool = False,
    image_shape: tuple[int, int, int] = IMAGE_SHAPE,
) -> EpisodeArrays:
    """`length` steps; obs t is marked (episode, t), the final obs (episode, length)."""
    frames = [marked_obs(episode, t, image_shape) for t in range(length + 1)]
    rng = np.random.default_rng([episode, 10_000])
    done = np.zeros(length, bool)
    policy_action = rng.uniform(-1, 1, (length, ACTION_DIM)).astype(np.float32)
    policy_action[::3] = np.nan
    return EpisodeArrays(
        obs={key: np.stack([f[key] for f in frames[:-1]]) for key in frames[0]},
        final_obs=frames[-1],
        action=rng.uniform(-1, 1, (length, ACTION_DIM)).astype(np.float32),
        policy_action=policy_action,
        reward=rng.standard_normal(length).astype(np.float32),
        terminated=np.concatenate([done[:-1], [terminated]]),
        truncated=np.concatenate([done[:-1], [truncated]]),
        intervened=rng.random(length) < 0.3,
        timestamp=1000.0 + episode * 100 + np.arange(length) / 10.0,
    )


@pytest.fixture
def marked() -> SimpleNamespace:
    """The helpers above, for tests (importlib mode cannot import conftest by name)."""
    return SimpleNamespace(
        space=marked_space, obs=marked_obs, episode=marked_episode, action_dim=ACTION_DIM, image_shape=IMAGE_SHAPE
    )
