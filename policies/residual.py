"""Residual off-policy RL on a frozen base policy (ResFiT-style): the base (a chunked diffusion policy)
proposes an action each step, a SAC actor adds a bounded correction, and SAC learns from the sparse reward.

The residual problem is an ordinary gymnasium env, so the unchanged SAC loop trains it:

    observation:  the env's observation + `state/base_action` (what the base proposes for this step)
    action:       residual r in [-1, 1]^A
    executed arm: clip(base + scale * r, -1, 1)      (|executed - base| <= scale in every arm dimension)
    gripper:      the base's command while |r| < GRIPPER_THRESHOLD ('stay'); open / close overrides it

So a zero residual is the base exactly, gripper included: the residual's grasp critic keeps the base's gripper
unless it prefers another command by its margin (`SACConfig.grasp_override_margin`).

What is stored is what was executed: `residual_of` maps the executed action back to the residual that
reproduces it exactly, beyond the bound where a person's override went further than the residual may
(`bounded=False`), so the learner never trains on an action other than the one the arm received. Scripted
interventions and demos act in the env's own action space; `ResidualExpert` maps them into the residual space
(the residual that reproduces the expert's action as closely as the bound allows, as the robot's operator is
not bounded).

`Residual` is the same bookkeeping without gymnasium, for the ROS 2 actor (the HIL loop on a robot) and
for converting recorded demonstrations (`residual_episode`); `ResidualPolicy` is a trained residual and its
base as one policy (evaluation and deployment, through `tether.policies.registry.load_policy`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from tether.datasets.episode import EpisodeArrays
from tether.spaces import GRIPPER_THRESHOLD
from tether.types import ACTION_TAKEN, Observation

BASE_ACTION = "state/base_action"


class BasePolicy(Protocol):
    observation_keys: tuple[str, ...]

    def reset(self) -> None: ...

    def act(self, obs: Observation) -> np.ndarray: ...

    def close(self) -> None: ...


def base_action_space(action_dim: int) -> gym.spaces.Box:
    """The observation entry `state/base_action`: the base's proposal, in action units."""
    return gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)


def compose(base: np.ndarray, residual: np.ndarray, scale: float) -> np.ndarray:
    """The executed action: the base's arm plus the residual scaled into [-scale, scale], within [-1, 1]; the
    base's gripper command unless the residual's gripper says open or close (the last dimension)."""
    base, residual = np.asarray(base, np.float32), np.asarray(residual, np.float32)
    executed = np.clip(base + scale * np.clip(residual, -1.0, 1.0), -1.0, 1.0)
    override = np.abs(residual[..., -1]) >= GRIPPER_THRESHOLD
    executed[..., -1] = np.where(override, np.sign(residual[..., -1]), base[..., -1])
    return executed.astype(np.float32)


def residual_for(base: np.ndarray, target: np.ndarray, scale: float, *, bounded: bool = True) -> np.ndarray:
    """The residual whose composition is closest to `target`: exact when every arm dimension is within `scale`
    of the base, or always with `bounded=False` (the arm part may then leave [-1, 1]: an executed action that
    went further than the residual may, a person's override). The gripper part keeps the base's command (0) when
    `target` means the same, else carries the target's open / close; a residual cannot say 'hold', so a target
    that holds the gripper where the base opens or closes it becomes the base's command (an operator's gripper
    is open or close)."""
    base, target = np.asarray(base, np.float32), np.asarray(target, np.float32)
    residual = (target - base) / scale
    if bounded:
        residual = np.clip(residual, -1.0, 1.0)
    same = _gripper_class(target[..., -1]) == _gripper_class(base[..., -1])
    residual[..., -1] = np.where(same, 0.0, _gripper_class(target[..., -1]))
    return residual.astype(np.float32)


def _gripper_class(value: np.ndarray) -> np.ndarray:
    """+1 close, -1 open, 0 stay, as the arm reads a gripper command (`tether.spaces.gripper_command`)."""
    return np.where(value >= GRIPPER_THRESHOLD, 1.0, np.where(value <= -GRIPPER_THRESHOLD, -1.0, 0.0))


class Residual:
    """A frozen base policy and the bound of the correction on top of it."""

    def __init__(self, base: BasePolicy, scale: float) -> None:
        if not 0 < scale <= 2:
            raise ValueError(f"residual scale {scale}: must be in (0, 2] (actions span [-1, 1])")
        self.base, self.scale = base, scale

    def reset(self) -> None:
        self.base.reset()

    def observe(self, obs: Observation) -> Observation:
        """`obs` with the base's proposal for it under `state/base_action` (advances a chunked base by one step)."""
        base_action = np.asarray(self.base.act({k: obs[k] for k in self.base.observation_keys}), np.float32)
        return {**obs, BASE_ACTION: base_action}

    def execute(self, obs: Observation, residual: np.ndarray) -> np.ndarray:
        return compose(obs[BASE_ACTION], residual, self.scale)

    def residual_of(self, obs: Observation, executed: np.ndarray) -> np.ndarray:
        """The residual that reproduces the `executed` action exactly (what the learner stores)."""
        return residual_for(obs[BASE_ACTION], executed, self.scale, bounded=False)

    def close(self) -> None:
        self.base.close()


class ResidualPolicy:
    """A trained residual `actor` (it reads the observation plus `state/base_action`) and its base as one policy:
    each tick the base proposes, the actor corrects, and the bounded sum is the action."""

    def __init__(self, actor: Callable[[Observation], np.ndarray], residual: Residual) -> None:
        self.actor, self.residual = actor, residual

    def reset(self) -> None:
        self.residual.reset()

    def act(self, obs: Observation) -> np.ndarray:
        obs = self.residual.observe(obs)
        return self.residual.execute(obs, self.actor(obs))

    def close(self) -> None:
        self.residual.close()


def residual_episode(episode: EpisodeArrays, residual: Residual, keys: tuple[str, ...]) -> EpisodeArrays:
    """A recorded episode (executed actions) as the residual learner sees it: observation `keys` plus the base's
    proposal at every step (the base runs through the episode from a reset), actions as residuals."""
    residual.reset()
    obs = [residual.observe({k: episode.obs[k][t] for k in keys}) for t in range(len(episode))]
    final_obs = residual.observe({k: episode.final_obs[k] for k in keys})
    actions = np.stack([residual.residual_of(o, a) for o, a in zip(obs, episode.action)])  # what was executed
    proposals = np.stack([
        np.full_like(p, np.nan) if np.isnan(p).any() else residual_for(o[BASE_ACTION], p, residual.scale)
        for o, p in zip(obs, episode.policy_action)
    ])
    return EpisodeArrays(
        obs={k: np.stack([o[k] for o in obs]) for k in obs[0]}, final_obs=final_obs, action=actions,
        policy_action=proposals.astype(np.float32), reward=episode.reward, terminated=episode.terminated,
        truncated=episode.truncated, intervened=episode.intervened, timestamp=episode.timestamp,
    )


class ResidualEnv(gym.Wrapper):
    """`env` as the residual actor sees it (see the module docstring)."""

    def __init__(self, env: gym.Env, base: BasePolicy, scale: float) -> None:
        self.residual = Residual(base, scale)
        super().__init__(env)
        self.base, self.scale = base, scale
        dim = env.action_space.shape[0]
        self.observation_space = gym.spaces.Dict(
            {**env.observation_space.spaces, BASE_ACTION: base_action_space(dim)})
        self.action_space = gym.spaces.Box(-1.0, 1.0, (dim,), np.float32)
        self.base_action = np.zeros(dim, np.float32)

    def reset(self, **kwargs: Any) -> tuple[Observation, dict[str, Any]]:
        self.residual.reset()
        obs, info = self.env.reset(**kwargs)
        return self._with_base(obs), info

    def step(self, residual: np.ndarray):
        executed = compose(self.base_action, residual, self.scale)
        taken = residual_for(self.base_action, executed, self.scale, bounded=False)
        obs, reward, terminated, truncated, info = self.env.step(executed)
        info = {**info, "base_action": self.base_action, "executed_action": executed, ACTION_TAKEN: taken}
        return self._with_base(obs), reward, terminated, truncated, info

    def _with_base(self, obs: Observation) -> Observation:
        obs = self.residual.observe(obs)
        self.base_action = obs[BASE_ACTION]
        return obs


class ResidualExpert:
    """An expert of the underlying env (scripted operator) speaking in residuals; `Expert` of the SAC loop."""

    def __init__(self, expert: Any, env: ResidualEnv) -> None:
        self.expert, self.env = expert, env

    def reset(self) -> None:
        self.expert.reset()

    def act(self, env: gym.Env) -> np.ndarray:
        return residual_for(self.env.base_action, self.expert.act(env), self.env.scale)
