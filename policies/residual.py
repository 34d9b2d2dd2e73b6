"""Residual off-policy RL on a frozen base policy (ResFiT-style): the base (a chunked diffusion policy)
proposes an action each step, a SAC actor adds a bounded correction, and SAC learns from the sparse reward.

The residual problem is an ordinary gymnasium env, so the unchanged SAC loop trains it:

    observation:  the env's observation + `state/base_action` (what the base proposes for this step)
    action:       residual r in [-1, 1]^A
    executed:     clip(base + scale * r, -1, 1)      (|executed - base| <= scale in every dimension)

Scripted interventions and demos act in the env's own action space; `ResidualExpert` maps them into the
residual space (the residual that reproduces the expert's action as closely as the bound allows).
"""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from tether.types import Observation

BASE_ACTION = "state/base_action"


class BasePolicy(Protocol):
    observation_keys: tuple[str, ...]

    def reset(self) -> None: ...

    def act(self, obs: Observation) -> np.ndarray: ...


def compose(base: np.ndarray, residual: np.ndarray, scale: float) -> np.ndarray:
    """The executed action: the base plus the residual scaled into [-scale, scale], within [-1, 1]."""
    return np.clip(base + scale * np.clip(residual, -1.0, 1.0), -1.0, 1.0).astype(np.float32)


def residual_for(base: np.ndarray, target: np.ndarray, scale: float) -> np.ndarray:
    """The residual whose composition is closest to `target` (exact when |target - base| <= scale)."""
    return np.clip((np.asarray(target) - base) / scale, -1.0, 1.0).astype(np.float32)


class ResidualEnv(gym.Wrapper):
    """`env` as the residual actor sees it (see the module docstring)."""

    def __init__(self, env: gym.Env, base: BasePolicy, scale: float) -> None:
        if not 0 < scale <= 2:
            raise ValueError(f"residual scale {scale}: must be in (0, 2] (actions span [-1, 1])")
        super().__init__(env)
        self.base, self.scale = base, scale
        dim = env.action_space.shape[0]
        self.observation_space = gym.spaces.Dict(
            {**env.observation_space.spaces, BASE_ACTION: gym.spaces.Box(-1.0, 1.0, (dim,), np.float32)})
        self.action_space = gym.spaces.Box(-1.0, 1.0, (dim,), np.float32)
        self.base_action = np.zeros(dim, np.float32)

    def reset(self, **kwargs: Any) -> tuple[Observation, dict[str, Any]]:
        self.base.reset()
        obs, info = self.env.reset(**kwargs)
        return self._with_base(obs), info

    def step(self, residual: np.ndarray):
        executed = compose(self.base_action, residual, self.scale)
        obs, reward, terminated, truncated, info = self.env.step(executed)
        info = {**info, "base_action": self.base_action, "executed_action": executed}
        return self._with_base(obs), reward, terminated, truncated, info

    def _with_base(self, obs: Observation) -> Observation:
        self.base_action = np.asarray(self.base.act({k: obs[k] for k in self.base.observation_keys}), np.float32)
        return {**obs, BASE_ACTION: self.base_action}


class ResidualExpert:
    """An expert of the underlying env (scripted operator) speaking in residuals; `Expert` of the SAC loop."""

    def __init__(self, expert: Any, env: ResidualEnv) -> None:
        self.expert, self.env = expert, env

    def reset(self) -> None:
        self.expert.reset()

    def act(self, env: gym.Env) -> np.ndarray:
        return residual_for(self.env.base_action, self.expert.act(env), self.env.scale)
