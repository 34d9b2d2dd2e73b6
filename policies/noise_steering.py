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

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from tether.policies.chunking import ChunkedExecutor
from tether.policies.diffusion import DiffusionPolicy
from tether.types import Observation


class NoiseDecoder:
    """The frozen base run one tick at a time from the initial noise last chosen: the sampler is deterministic,
    so a chosen noise fixes the next chunk, of which n_action_steps actions run before the next choice."""

    def __init__(self, policy: DiffusionPolicy, noise_scale: float) -> None:
        if noise_scale <= 0:
            raise ValueError(f"noise_scale {noise_scale}: must be positive")
        self.policy, self.noise_scale = policy, noise_scale
        self.chunk_shape = (policy.config.horizon, policy.action_dim)
        self.n_action_steps = policy.config.n_action_steps
        self._noise = np.zeros(self.chunk_shape, np.float32)
        # The executor plans exactly at every chunk boundary (synchronous), so each plan reads the latest choice.
        self.executor = ChunkedExecutor(lambda history: policy.predict_chunk(history, noise=self._noise),
                                        policy.observation_keys, n_obs_steps=policy.config.n_obs_steps,
                                        n_action_steps=self.n_action_steps, asynchronous=False,
                                        to_action=policy.tick_action)

    def choose(self, action: np.ndarray) -> None:
        """The RL action w in [-1, 1]^(H A) sets the next chunk's initial noise to noise_scale * w."""
        self._noise = self.noise_scale * np.clip(np.asarray(action, np.float32), -1, 1).reshape(self.chunk_shape)

    def reset(self) -> None:
        self.executor.reset()

    def act(self, obs: Observation) -> np.ndarray:
        return self.executor.act(obs)


class NoiseSteeredPolicy:
    """A trained noise-space `actor` and its base as one per-tick policy: at each chunk boundary the actor picks
    the noise from the current observation, and the base decodes it into the next n_action_steps actions."""

    def __init__(self, actor: Callable[[Observation], np.ndarray], decoder: NoiseDecoder) -> None:
        self.actor, self.decoder = actor, decoder
        self._tick = 0

    def reset(self) -> None:
        self.decoder.reset()
        self._tick = 0

    def act(self, obs: Observation) -> np.ndarray:
        if self._tick % self.decoder.n_action_steps == 0:
            self.decoder.choose(self.actor(obs))
        self._tick += 1
        return self.decoder.act(obs)

    def close(self) -> None:
        """Synchronous: nothing runs in the background."""


class NoiseSteeringEnv(gym.Wrapper):
    """`env` seen one chunk at a time, with the sampler's initial noise as the action (see the module docstring)."""

    def __init__(self, env: gym.Env, policy: DiffusionPolicy, noise_scale: float = 1.5) -> None:
        self.decoder = NoiseDecoder(policy, noise_scale)
        super().__init__(env)
        self.policy, self.noise_scale = policy, noise_scale
        self.action_space = gym.spaces.Box(-1.0, 1.0, (int(np.prod(self.decoder.chunk_shape)),), np.float32)
        self._obs: Observation | None = None

    def reset(self, **kwargs: Any) -> tuple[Observation, dict[str, Any]]:
        self.decoder.reset()
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def step(self, action: np.ndarray):
        if self._obs is None:
            raise RuntimeError("NoiseSteeringEnv: step before reset")
        self.decoder.choose(action)
        total, executed = 0.0, []
        for _ in range(self.decoder.n_action_steps):
            executed.append(self.decoder.act(self._obs))
            self._obs, reward, terminated, truncated, info = self.env.step(executed[-1])
            total += float(reward)
            if terminated or truncated:
                break
        info = {**info, "executed_actions": np.stack(executed)}
        return self._obs, total, terminated, truncated, info
