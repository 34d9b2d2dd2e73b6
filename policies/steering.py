"""SAC on a frozen diffusion policy, either way this stack offers: a bounded residual added to the base's
actions (`tether.policies.residual`, ResFiT-style) or the initial noise of the base's sampler
(`tether.policies.noise_steering`, DSRL). The same `Steering` builds the env the RL actor sees while it
trains (`wrap`), the per-tick policy of actor and base that `tether.policies.registry.load_policy` returns
for evaluation and deployment (`policy`), and the base the actor node runs while a residual trains on the
robot (`residual`). It travels in the SAC checkpoint's config.json:

    config.json  "base_policy": {"path": "/abs/dp/best", "steer": "residual" | "noise", "scale": 0.2}

`scale` is the residual bound per action dimension, or the noise scale (noise = scale * action).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from tether.policies.diffusion import DiffusionPolicy, chunked_policy
from tether.policies.noise_steering import NoiseDecoder, NoiseSteeredPolicy, NoiseSteeringEnv
from tether.policies.registry import STEERING_KEY as CONFIG_KEY
from tether.policies.registry import STEERS
from tether.policies.residual import Residual, ResidualEnv, ResidualPolicy
from tether.policies.sac import SACConfig
from tether.types import Observation

Steer = Literal["residual", "noise"]

NOISE_SCALE = 1.5
"""Noise steering's default: initial noise = 1.5 x the actor's action in [-1, 1] (DSRL's range)."""

RESIDUAL_SAC = {"actor_init_std": 0.1, "actor_lr": 3e-5, "critic_warmup_updates": 4_000,
                "grasp_override_margin": 0.05}
"""SAC's recipe for a residual, safe by construction: it starts as no correction (zero mean, pre-tanh std 0.1:
exploration of about 0.02 of the action range at scale 0.2) and keeps the base's gripper; the critics learn the base's rollouts
and the demos for 4,000 updates (1,000 environment steps at UTD 4) before the actor moves, and then it moves at a
tenth of the critics' learning rate. A caller's explicit SAC settings win over it."""


@dataclass(frozen=True)
class Steering:
    """Which frozen diffusion checkpoint the RL actor steers, how, and how far."""

    base: Path
    steer: Steer
    scale: float

    def __post_init__(self) -> None:
        if self.steer not in STEERS:
            raise ValueError(f"steer '{self.steer}': must be one of {', '.join(STEERS)}")

    def to_json(self) -> dict[str, Any]:
        return {"path": str(Path(self.base).resolve()), "steer": self.steer, "scale": self.scale}

    @classmethod
    def from_checkpoint_config(cls, config: dict[str, Any]) -> Steering | None:
        """The steering a SAC checkpoint was trained with, or None for a plain SAC policy."""
        entry = config.get(CONFIG_KEY)
        if entry is None:
            return None
        return cls(base=Path(entry["path"]), steer=entry["steer"], scale=float(entry["scale"]))

    def sac_config(self, sac: SACConfig) -> SACConfig:
        """The SAC settings to steer with: the residual recipe under the fields `sac` was given explicitly; noise
        steering has no grasp critic (its action is noise, not arm + gripper)."""
        if self.steer == "noise":
            return sac.model_copy(update={"grasp_critic": False})
        return SACConfig.model_validate({**RESIDUAL_SAC, **sac.model_dump(include=sac.model_fields_set)})

    def load_base(self) -> DiffusionPolicy:
        """The frozen base from its checkpoint (errors name it and the reason)."""
        return DiffusionPolicy.load(self.base)

    def wrap(self, env: gym.Env) -> gym.Env:
        """`env` as the RL actor sees it while it trains."""
        policy = self.load_base()
        missing = [k for k in policy.observation_keys if k not in env.observation_space.spaces]
        if missing:
            raise ValueError(f"{self.base}: needs observation {missing}, which this env lacks")
        if self.steer == "residual":
            return ResidualEnv(env, chunked_policy(policy, asynchronous=False), self.scale)
        return NoiseSteeringEnv(env, policy, noise_scale=self.scale)

    def policy(self, actor: Callable[[Observation], np.ndarray], base: DiffusionPolicy, *,
               asynchronous: bool) -> ResidualPolicy | NoiseSteeredPolicy:
        """The trained `actor` and `base` as one per-tick policy acting in the env's own action space
        (what `tether.policies.registry` loads for evaluation and deployment)."""
        if self.steer == "residual":
            return ResidualPolicy(actor, self._residual(base, asynchronous=asynchronous))
        return NoiseSteeredPolicy(actor, NoiseDecoder(base, self.scale))

    def residual(self, *, asynchronous: bool = True) -> Residual:
        """The base and bound as the robot's actor node applies them while the learner trains the residual: residual
        steering only, the base chunked (asynchronously by default, so its inference never stalls the control loop)."""
        if self.steer != "residual":
            raise ValueError(f"{self.base}: '{self.steer}' steering trains in the twin only (tether train sac); "
                             "the actor node trains residual steering")
        return self._residual(self.load_base(), asynchronous=asynchronous)

    def _residual(self, base: DiffusionPolicy, *, asynchronous: bool) -> Residual:
        return Residual(chunked_policy(base, asynchronous=asynchronous), self.scale)
