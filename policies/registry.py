"""One policy contract: every trained policy loads through `load_policy(path)` and answers `act(observation)`.

A checkpoint says what it is in config.json: "kind" names the learner that wrote it, and a SAC checkpoint
trained on a frozen diffusion base records how it steers that base ("base_policy", see
`tether.policies.steering`). That gives four policy kinds, each with a loader registered here:

    sac        SACAgent, deterministic or sampled
    diffusion  DiffusionPolicy run chunked (receding horizon; inference on a thread when asynchronous)
    residual   SAC correction on top of its chunked diffusion base (base + bounded residual)
    noise      SAC choosing the initial noise its diffusion base decodes, once per chunk (DSRL)

Anything else (an unknown kind, a reward classifier, a missing or damaged file) is a one-line
`CheckpointError`. `path` may be a checkpoint directory or a run directory: the run's policy is found
inside it (`find_checkpoint`). Every policy acts in the normalised action convention: observations
dict in, action in [-1, 1]^A out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from tether.policies.checkpoint import CONFIG_FILE, MODEL_FILE, CheckpointError, checkpoint_config
from tether.types import Observation

STEERS = ("residual", "noise")
"""How a SAC checkpoint may steer a frozen diffusion base (`tether.policies.steering`)."""
STEERING_KEY = "base_policy"

RUN_CHECKPOINTS = ("checkpoint", "best", "last")
"""A run directory's policy checkpoint, preferred first: SAC runs (`train sac`, `train sim`, `train hil`) keep
their latest policy in checkpoint/ (and, where they evaluate, the policy of their best evaluation in best/: name
it to use it); diffusion runs best/ (highest rollout success) and last/. `tether demo` and `train sim --policy
diffusion` keep such a run one folder down (hil/, diffusion/)."""
NOT_POLICIES = {"reward_classifier": "a reward classifier (it scores observations; it does not act)"}


class Controller(Protocol):
    """What acts inside a loaded policy, one call per control tick."""

    def act(self, obs: Observation) -> np.ndarray: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


class Policy(Protocol):
    """The contract eval, deploy and the actor node rely on."""

    kind: str
    observation_space: gym.spaces.Dict
    """What the policy reads from the env (or the actor's assembled observation)."""
    action_space: gym.spaces.Box
    """Normalised actions, [-1, 1] per dimension."""

    @property
    def observation_keys(self) -> tuple[str, ...]: ...

    def act(self, obs: Observation) -> np.ndarray: ...

    def reset(self) -> None:
        """A new episode starts: forget action chunks and observation history."""

    def close(self) -> None:
        """Stop background inference, if any."""


@dataclass(frozen=True)
class LoadOptions:
    """How a policy acts once loaded."""

    deterministic: bool = True
    """SAC: the mean action (evaluation, deployment) instead of a sample (on-robot training)."""
    asynchronous: bool = False
    """Diffusion bases: infer the next chunk on a background thread (the actor node) instead of blocking."""
    ensemble: float | None = None
    """Diffusion: ACT's temporal ensembling weight (None: the newest chunk's action)."""
    sampler_steps: int | None = None
    """Diffusion: sampler steps per chunk (DDIM or Euler) instead of the checkpoint's: the few-step sampler."""


@dataclass
class LoadedPolicy:
    """A checkpoint's policy, ready to act: what it is, what it reads, what it returns."""

    kind: str
    checkpoint: Path
    observation_space: gym.spaces.Dict
    action_space: gym.spaces.Box
    controller: Controller

    @property
    def observation_keys(self) -> tuple[str, ...]:
        return tuple(self.observation_space.spaces)

    def act(self, obs: Observation) -> np.ndarray:
        return np.asarray(self.controller.act({key: obs[key] for key in self.observation_keys}), np.float32)

    def reset(self) -> None:
        self.controller.reset()

    def close(self) -> None:
        self.controller.close()


class SACPolicy:
    """A SAC agent as a controller; the actor node also builds one from the learner's weights message."""

    def __init__(self, agent: Any, deterministic: bool) -> None:
        self.agent = agent.eval()
        self.observation_keys = tuple(agent.observation_space.spaces)
        self.deterministic = deterministic

    @classmethod
    def from_weights(cls, weights: dict[str, np.ndarray], config: dict[str, Any], deterministic: bool) -> SACPolicy:
        """Built from the learner's weights message (safetensors tensors and the checkpoint's config)."""
        import torch

        from tether.policies.sac import SACAgent, SACConfig, space_from_json

        agent = SACAgent(
            space_from_json(config["observation_space"]), config["action_dim"], SACConfig.model_validate(config["sac"])
        )
        agent.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})
        return cls(agent, deterministic)

    def act(self, obs: Observation) -> np.ndarray:
        return self.agent.act(obs, deterministic=self.deterministic)

    def reset(self) -> None:
        """Stateless: each action depends on the current observation only."""

    def close(self) -> None:
        """Nothing runs in the background."""


Loader = Callable[[Path, dict[str, Any], LoadOptions], LoadedPolicy]
_LOADERS: dict[str, Loader] = {}


def register(kind: str) -> Callable[[Loader], Loader]:
    """Make `kind` loadable by `load_policy`."""

    def add(loader: Loader) -> Loader:
        _LOADERS[kind] = loader
        return loader

    return add


def action_box(dim: int) -> gym.spaces.Box:
    return gym.spaces.Box(-1.0, 1.0, (dim,), np.float32)


def policy_kind(checkpoint: Path, config: dict[str, Any]) -> str:
    """The registry kind of a checkpoint: its learner, or for SAC on a diffusion base how it steers the base."""
    kind = config.get("kind")
    if not isinstance(kind, str):
        raise CheckpointError(f"checkpoint {checkpoint / CONFIG_FILE}: no \"kind\" names the learner that wrote it")
    if kind in NOT_POLICIES:
        raise CheckpointError(f"checkpoint {checkpoint}: kind {kind!r} is {NOT_POLICIES[kind]}, not a policy")
    steering = config.get(STEERING_KEY) if kind == "sac" else None
    if steering is not None:
        kind = steering.get("steer") if isinstance(steering, dict) else None
        if kind not in STEERS:
            raise CheckpointError(f"checkpoint {checkpoint / CONFIG_FILE}: {STEERING_KEY}.steer {kind!r} "
                                  f"(must be one of {', '.join(STEERS)})")
    if kind not in _LOADERS:
        raise CheckpointError(f"checkpoint {checkpoint}: kind {kind!r} is not a policy kind "
                              f"(known: {', '.join(sorted(_LOADERS))})")
    return kind


def find_checkpoint(path: Path) -> Path:
    """`path` itself if it is a checkpoint (it has config.json or model.safetensors), else the policy checkpoint
    of the run it holds, directly or one folder down; errors name the folder and what was looked for."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint folder")
    if (path / CONFIG_FILE).exists() or (path / MODEL_FILE).exists():
        return path
    direct = _run_checkpoint(path)
    if direct is not None:
        return direct
    nested = [found for run in sorted(path.iterdir()) if run.is_dir() and (found := _run_checkpoint(run)) is not None]
    if len(nested) == 1:
        return nested[0]
    if nested:
        raise CheckpointError(f"{path}: holds several runs ({', '.join(str(p) for p in nested)}); name one")
    raise CheckpointError(f"{path}: not a checkpoint folder (no {CONFIG_FILE}) nor a run folder "
                          f"(no {'/, '.join(RUN_CHECKPOINTS)}/ inside)")


def _run_checkpoint(run: Path) -> Path | None:
    return next((run / name for name in RUN_CHECKPOINTS if (run / name).is_dir()), None)


def load_policy(path: Path, *, deterministic: bool = True, asynchronous: bool = False,
                ensemble: float | None = None, sampler_steps: int | None = None) -> LoadedPolicy:
    """The policy a checkpoint or run directory holds, loaded into the class its kind names (see the module
    docstring); anything that cannot act is a `CheckpointError` naming the folder and the reason."""
    checkpoint = find_checkpoint(path)
    config = checkpoint_config(checkpoint)
    kind = policy_kind(checkpoint, config)
    if sampler_steps is not None and kind != "diffusion":
        raise CheckpointError(f"{checkpoint}: sampler steps apply to a diffusion policy, not to kind '{kind}'")
    options = LoadOptions(deterministic=deterministic, asynchronous=asynchronous, ensemble=ensemble,
                          sampler_steps=sampler_steps)
    try:
        return _LOADERS[kind](checkpoint, config, options)
    except CheckpointError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError, RuntimeError) as error:
        # config.json names a kind but not its settings, or the weights do not fit the network it describes
        reason = " ".join(str(error).split())
        raise CheckpointError(f"checkpoint {checkpoint}: not a loadable {kind!r} policy "
                              f"({type(error).__name__}: {reason})") from None


# --- the kinds ----------------------------------------------------------------------------


@register("sac")
def _sac(checkpoint: Path, config: dict[str, Any], options: LoadOptions) -> LoadedPolicy:
    from tether.policies.sac import SACAgent

    agent = SACAgent.load(checkpoint)
    return LoadedPolicy("sac", checkpoint, agent.observation_space, action_box(agent.action_dim),
                        SACPolicy(agent, options.deterministic))


@register("diffusion")
def _diffusion(checkpoint: Path, config: dict[str, Any], options: LoadOptions) -> LoadedPolicy:
    from tether.policies.diffusion import DiffusionConfig, DiffusionPolicy, chunked_policy

    policy = DiffusionPolicy.load(checkpoint)
    if options.sampler_steps is not None:
        policy.config = DiffusionConfig.model_validate({**policy.config.model_dump(), "inference_steps": options.sampler_steps})
    executor = chunked_policy(policy, asynchronous=options.asynchronous, ensemble=options.ensemble)
    return LoadedPolicy("diffusion", checkpoint, policy.observation_space, action_box(policy.action_dim), executor)


@register("residual")
@register("noise")
def _steered(checkpoint: Path, config: dict[str, Any], options: LoadOptions) -> LoadedPolicy:
    """SAC with the frozen diffusion base it was trained to steer; the base's own errors name it."""
    from tether.policies.residual import BASE_ACTION
    from tether.policies.sac import SACAgent
    from tether.policies.steering import Steering

    steering = Steering.from_checkpoint_config(config)
    actor = SACPolicy(SACAgent.load(checkpoint), options.deterministic)
    try:
        base = steering.load_base()
    except ValueError as error:
        raise CheckpointError(f"checkpoint {checkpoint}: its base policy: {error}") from None
    reads = {k: v for k, v in actor.agent.observation_space.spaces.items() if k != BASE_ACTION}
    space = gym.spaces.Dict({**reads, **base.observation_space.spaces})
    controller = steering.policy(actor.act, base, asynchronous=options.asynchronous)
    return LoadedPolicy(steering.steer, checkpoint, space, action_box(base.action_dim), controller)


class ResetOnEpisode(gym.Wrapper):
    """Tells a stateful policy (action chunks, history) that an episode starts, so a loop that only resets the
    env can drive it like a stateless one."""

    def __init__(self, env: gym.Env, policy: Controller) -> None:
        super().__init__(env)
        self.policy = policy

    def reset(self, **kwargs: Any) -> tuple[Observation, dict[str, Any]]:
        self.policy.reset()
        return self.env.reset(**kwargs)
