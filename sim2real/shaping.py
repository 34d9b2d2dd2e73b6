"""Potential-based reward shaping from a twin task's dense terms.

The reward is the task's sparse success plus `discount * phi(s') - phi(s)`, with phi the mean of
the task's named dense terms (each in [0, 1]) and phi = 0 after an episode ends in success or
failure (Ng, Harada and Russell 1999). Every step toward success pays at once, yet the optimal
policy is the sparse task's: the plain dense reward (terms + success) would instead pay a policy
to hover just outside the success region for the rest of the episode, since success ends it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


def potential(info: dict[str, Any]) -> float:
    """phi: the mean of the task's dense terms in `info["reward_terms"]`."""
    return float(np.mean(list(info["reward_terms"].values())))


class PotentialShaping(gym.Wrapper):
    """A sparse-reward twin env with shaping that keeps its optimal policy; `discount` must be the learner's."""

    def __init__(self, env: gym.Env, discount: float) -> None:
        if getattr(env.unwrapped, "reward_mode", "sparse") != "sparse":
            raise ValueError("PotentialShaping: the wrapped env must give the sparse reward")
        if not 0 < discount <= 1:
            raise ValueError(f"PotentialShaping: discount {discount} must be in (0, 1]")
        super().__init__(env)
        self.discount = discount
        self._phi = 0.0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._phi = potential(info)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        phi_next = 0.0 if terminated else potential(info)
        shaped = float(reward) + self.discount * phi_next - self._phi
        self._phi = potential(info)
        return obs, shaped, terminated, truncated, info
