"""Noise-space steering of a frozen diffusion policy (DSRL, Wagenmaker et al. 2025): an RL actor chooses the
initial noise of the deterministic sampler (DDIM with eta 0, or the flow Euler sampler) instead of an action.

As a gymnasium env over chunks, so the unchanged SAC loop trains it:

    observation:  the env's observation at the start of a chunk
    action:       w in [-1, 1]^(H A), the initial noise is noise_scale * w reshaped to (H, A)
    one step:     sample the chunk from that noise, execute its n_action_steps actions (fewer if the episode
                  ends), reward = their sum, terminated / truncated as the underlying env says

Whatever noise the actor picks, the executed actions are the base policy's decoding of it, so they stay on
the demonstrations' action manifold (DSRL's argument for why it is safe on hardware).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from tether.policies.chunking import ChunkedExecutor
from tether.policies.diffusion import DiffusionPolicy
from tether.types import Observation


class NoiseSteeringEnv(gym.Wrapper):
    """`env` seen one chunk at a time, with the sampler's initial noise as the action (see the module docstring)."""

    def __init__(self, env: gym.Env, policy: DiffusionPolicy, noise_scale: float = 1.5) -> None:
        if noise_scale <= 0:
            raise ValueError(f"noise_scale {noise_scale}: must be positive")
        super().__init__(env)
        self.policy, self.noise_scale = policy, noise_scale
        self.chunk_shape = (policy.config.horizon, policy.action_dim)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (int(np.prod(self.chunk_shape)),), np.float32)
        self._noise = np.zeros(self.chunk_shape, np.float32)
        # The executor plans exactly at every chunk boundary (synchronous), so each plan reads this step's noise.
        self.executor = ChunkedExecutor(lambda history: policy.predict_chunk(history, noise=self._noise),
                                        policy.observation_keys, n_obs_steps=policy.config.n_obs_steps,
                                        n_action_steps=policy.config.n_action_steps, asynchronous=False)
        self._obs: Observation | None = None

    def reset(self, **kwargs: Any) -> tuple[Observation, dict[str, Any]]:
        self.executor.reset()
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def step(self, action: np.ndarray):
        if self._obs is None:
            raise RuntimeError("NoiseSteeringEnv: step before reset")
        self._noise = self.noise_scale * np.clip(np.asarray(action, np.float32), -1, 1).reshape(self.chunk_shape)
        total, executed = 0.0, []
        for _ in range(self.policy.config.n_action_steps):
            executed.append(self.executor.act(self._obs))
            self._obs, reward, terminated, truncated, info = self.env.step(executed[-1])
            total += float(reward)
            if terminated or truncated:
                break
        info = {**info, "executed_actions": np.stack(executed)}
        return self._obs, total, terminated, truncated, info
