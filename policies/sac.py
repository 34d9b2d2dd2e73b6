"""Sample-efficient SAC for real robots, as in RLPD / SERL / HIL-SERL.

One module holds the algorithm: config, agent (networks + optimisers + counters), the update, and
acting. Plumbing shared with other learners lives in `networks` and `checkpoint`.

- Critic: an ensemble of E fully independent Q-networks with stacked weights
  (`networks.EnsembleMLP`), with LayerNorm; the target is the minimum over all members, or over a
  random subset of `critic_subsample` of them (REDQ, as RLPD/SERL do with 10), and only that subset
  of the target ensemble is evaluated.
- Actor: tanh-squashed Gaussian; learned temperature with target entropy -|A|/2.
- Images: one conv encoder per camera, shared by critic and actor; the critic loss trains it,
  the actor reads it detached unless `actor_trains_encoder` (DrQ). Random-shift augmentation is
  applied to obs and next_obs independently for every minibatch.
- Hybrid gripper (HIL-SERL): the continuous actor moves the arm; a discrete grasp critic over
  open / stay / close is trained with double DQN, with a small penalty each time a command
  actually moves the gripper, so the policy does not chatter.
- Update-to-data: `update(batch)` splits a batch of `utd_ratio * B` into `utd_ratio` minibatches
  and takes one critic step per minibatch (RLPD), and an actor + temperature step every
  `critic_actor_ratio` critic steps (HIL-SERL's cta_ratio). The training loop calls it once per
  environment step, so UTD is critic updates per environment step.

Every random draw (initialisation, exploration noise, REDQ subsets, augmentation) comes from the
agent's own `torch.Generator`, which is checkpointed: resuming continues bit-for-bit.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from tether.policies.checkpoint import (
    Checkpoint,
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_checkpoint,
)
from tether.policies.networks import (
    CriticEnsemble,
    EncoderConfig,
    ObservationEncoder,
    TanhGaussianActor,
    StrictConfig,
    cached_key,
    mlp,
)
from tether.actions import GRIPPER_LAYOUTS
from tether.spaces import GRIPPER, GRIPPER_CLOSE, GRIPPER_OPEN, GRIPPER_THRESHOLD, is_image_key
from tether.types import Batch, Observation

CHECKPOINT_KIND = "sac"

# Grasp classes of the discrete gripper critic, and the gripper command each one sends.
GRASP_OPEN, GRASP_STAY, GRASP_CLOSE = 0, 1, 2
GRASP_COMMANDS = (GRIPPER_OPEN, 0.0, GRIPPER_CLOSE)
"""Command sent per class; 0 is below the arm's threshold, so the gripper stays as it is."""


class SACConfig(StrictConfig):
    """Hyper-parameters of the agent. The defaults are the recipe that `tether demo` and
    benchmarks/sample_efficiency.py measure (docs/learner.md): RLPD/SERL's REDQ ensemble at UTD 4 with the actor
    updated once per environment step, a BC term and the grasp margin on what the operator did."""

    hidden_dims: tuple[int, ...] = (128, 128)
    """Hidden widths of actor, critic and grasp-critic MLPs (128: twice the updates per second of 256 on a CPU)."""
    layer_norm: bool = True
    """LayerNorm after every hidden linear layer (RLPD: it keeps Q from diverging at high UTD)."""
    num_critics: int = Field(10, ge=1)
    """Critic ensemble size; 10 with critic_subsample 2 is REDQ/RLPD."""
    critic_subsample: int | None = Field(2, ge=1)
    """Target Q is the min over a random subset of this many target members (REDQ); None: over all."""
    discount: float = Field(0.97, gt=0, le=1)
    """Per control step; 0.97 suits 10 Hz episodes of ~100 steps (SERL)."""
    tau: float = Field(0.005, gt=0, le=1)
    """Polyak rate of the target networks per critic update."""
    init_temperature: float = Field(0.01, gt=0)
    """Initial entropy temperature alpha (SERL)."""
    target_entropy: float | None = None
    """Entropy the temperature aims for; None: -|A|/2 over the continuous action dimensions."""
    backup_entropy: bool = False
    """Subtract alpha * log pi(a'|s') in the critic target (off in RLPD/SERL)."""
    lr: float = Field(3e-4, gt=0)
    """Adam learning rate of the critics, the grasp critic, the encoders and the temperature."""
    actor_lr: float = Field(1e-4, gt=0)
    """Adam learning rate of the actor. A third of the critics' rate: at 3e-4 the deterministic policy's success
    swung by up to 0.5 between evaluations 500 steps apart; at 1e-4 it climbed steadily (docs/learner.md)."""
    batch_size: int = Field(128, ge=1)
    """Transitions per critic update (the training loop samples utd_ratio * batch_size at once)."""
    utd_ratio: int = Field(4, ge=1)
    """Critic updates per environment step (update-to-data ratio)."""
    critic_actor_ratio: int = Field(4, ge=1)
    """Critic updates per actor/temperature update; equal to utd_ratio, the actor moves once per environment
    step, as SERL/RLPD do (an actor that chases a critic updated in the same step was what made success swing)."""
    log_std_range: tuple[float, float] = (-5.0, 2.0)
    """Bounds of the actor's pre-tanh log standard deviation."""
    grasp_critic: bool = True
    """Split the gripper off the continuous actor into a discrete open/stay/close double-DQN critic (HIL-SERL)."""
    grasp_penalty: float = Field(-0.02, le=0)
    """Added to the grasp critic's reward when its command moved the gripper (HIL-SERL: -0.02)."""
    grasp_moved_tol: float = Field(0.05, gt=0)
    """Change of `state/gripper` opening between obs and next_obs that counts as the gripper having moved."""
    grasp_margin: float = Field(0.05, ge=0)
    """DQfD's large-margin term on rows a person acted: every other grasp class must score at least this much
    below the person's, so classes the data never shows (the operator never sends 'stay') cannot win by
    extrapolation. 0 switches it off."""
    grasp_epsilon: float = Field(0.0, ge=0, le=1)
    """Chance of a uniformly random grasp class while exploring (0: greedy, as HIL-SERL)."""
    bc_weight: float = Field(1.0, ge=0)
    """Weight of a behaviour-cloning term on the actor: squared distance of its mean action from the action
    taken on rows a person acted (demos and interventions, `Batch.intervened`). 0 is plain SAC; a small
    weight keeps the actor near what the operator showed while Q is still uninformed (as TD3+BC, ConRFT)."""
    actor_init_std: float | None = Field(None, gt=0)
    """When set, the actor starts as the zero action at every state with this pre-tanh standard deviation (its
    output layer's weights zero), the grasp critic as indifferent, and the target entropy, unless given, is the
    entropy it starts with: a residual on a good base starts as no correction with little exploration noise and
    is not pushed to more. None: the usual random initialisation."""
    critic_warmup_updates: int = Field(0, ge=0)
    """Critic updates before the actor's (and the temperature's) first, and before the grasp critic's choice
    counts ('stay' until then): the critics learn the value of what the policy does as it starts (a residual:
    the base alone) and of the demos before the policy follows them."""
    grasp_override_margin: float | None = Field(None, ge=0)
    """When set, the grasp critic commands open or close only where that class's Q beats 'stay' by more than this
    (a residual's 'stay' keeps the base's gripper); None: the plain argmax."""
    actor_trains_encoder: bool = False
    """Let the actor loss update the image encoders; off freezes the backbone for the actor (DrQ)."""
    encoder: EncoderConfig = EncoderConfig(backbone="twin", freeze_backbone=True)
    """Per-camera image encoder (unused for state-only observations). The recipe is the shipped pretrained trunk,
    frozen, so features are cached and an update costs what a state update costs (docs/encoder.md); training the
    trunk end to end (`freeze_backbone: false`) is about 70x slower per update on a CPU."""

    @model_validator(mode="after")
    def _consistent(self) -> SACConfig:
        if self.critic_subsample is not None and self.critic_subsample > self.num_critics:
            raise ValueError(f"critic_subsample {self.critic_subsample} exceeds num_critics {self.num_critics}")
        if self.log_std_range[0] >= self.log_std_range[1]:
            raise ValueError(f"log_std_range {list(self.log_std_range)} must be increasing")
        return self


def grasp_class(gripper: torch.Tensor) -> torch.Tensor:
    """Gripper commands in [-1, 1] -> classes, read exactly as the arm does (`tether.spaces.gripper_command`):
    <= -GRIPPER_THRESHOLD open, >= +GRIPPER_THRESHOLD close, anything between stay."""
    classes = torch.full(gripper.shape, GRASP_STAY, dtype=torch.long, device=gripper.device)
    classes[gripper <= -GRIPPER_THRESHOLD] = GRASP_OPEN
    classes[gripper >= GRIPPER_THRESHOLD] = GRASP_CLOSE
    return classes


def gaussian_entropy(std: float) -> float:
    """Differential entropy (nats) of a one-dimensional normal distribution with standard deviation `std`."""
    return 0.5 * math.log(2 * math.pi * math.e) + math.log(std)


def temperature_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """Gradient descent raises alpha while the policy's entropy (-log_prob) is below the target."""
    return -(log_alpha * (log_prob.detach() + target_entropy)).mean()


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over the rows where `mask` holds, 0 where none does; no host sync, unlike indexing."""
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp(min=1.0)


def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target <- (1 - tau) target + tau online, for every parameter, in one multi-tensor kernel."""
    targets = list(target.parameters())
    if targets:  # a state-only encoder has none
        with torch.no_grad():
            torch._foreach_lerp_(targets, list(online.parameters()), tau)


def adam(params: list[nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with its fused kernel: one pass over all parameters per step instead of a dozen ops per tensor."""
    return torch.optim.Adam(params, lr=lr, fused=True)


def space_to_json(space: gym.spaces.Dict) -> dict[str, dict[str, Any]]:
    """Observation spec for config.json: shape and dtype per key."""
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in space.spaces.items()}


def space_from_json(spec: dict[str, dict[str, Any]]) -> gym.spaces.Dict:
    """Inverse of `space_to_json` (bounds are those of tether.spaces)."""
    spaces = {}
    for key, item in spec.items():
        if is_image_key(key):
            spaces[key] = gym.spaces.Box(0, 255, shape=tuple(item["shape"]), dtype=np.uint8)
        else:
            spaces[key] = gym.spaces.Box(-np.inf, np.inf, shape=tuple(item["shape"]), dtype=np.dtype(item["dtype"]))
    return gym.spaces.Dict(spaces)


class SACAgent(nn.Module):
    """Networks, optimisers, temperature, counters and RNG of one SAC learner.

    `state_dict()` holds every weight, the temperature and the counters; `save`/`load` add the
    optimiser moments and the RNG for exact resume.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Dict,
        action_dim: int,
        config: SACConfig | None = None,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        self.config = config = config or SACConfig()
        self.observation_space = observation_space
        self.action_dim = action_dim
        if config.grasp_critic and action_dim not in GRIPPER_LAYOUTS:  # else it would read an arm axis as the gripper
            raise ValueError(f"grasp_critic needs an action that ends in a gripper (length {GRIPPER_LAYOUTS}), got "
                             f"action_dim {action_dim}; a task without one (reach) sets grasp_critic false")
        if config.grasp_critic and GRIPPER not in observation_space.spaces:
            raise ValueError(f"grasp_critic needs '{GRIPPER}' in the observation to tell when the gripper moved")
        self.arm_dim = action_dim - 1 if config.grasp_critic else action_dim
        default_entropy = (-self.arm_dim / 2.0 if config.actor_init_std is None
                           else self.arm_dim * gaussian_entropy(config.actor_init_std))
        self.target_entropy = config.target_entropy if config.target_entropy is not None else default_entropy
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.encoder = ObservationEncoder(observation_space, config.encoder)
            features = self.encoder.feature_dim
            self.critic = CriticEnsemble(
                config.num_critics, features, self.arm_dim, config.hidden_dims, layer_norm=config.layer_norm
            )
            self.actor = TanhGaussianActor(
                features, self.arm_dim, config.hidden_dims, layer_norm=config.layer_norm,
                log_std_range=config.log_std_range,
            )
            self.grasp = mlp(features, config.hidden_dims, 3, layer_norm=config.layer_norm) if config.grasp_critic else None
            if config.actor_init_std is not None:
                self.actor.start_at_zero(config.actor_init_std)
                if self.grasp is not None:
                    nn.init.zeros_(self.grasp[-1].weight)
                    nn.init.zeros_(self.grasp[-1].bias)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(config.init_temperature)))
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.target_grasp = copy.deepcopy(self.grasp).requires_grad_(False) if self.grasp is not None else None
        self.register_buffer("critic_updates", torch.zeros((), dtype=torch.int64))
        self.register_buffer("actor_updates", torch.zeros((), dtype=torch.int64))
        self.to(self.device)

        encoder_params = [p for p in self.encoder.parameters() if p.requires_grad]
        self.critic_optimizer = adam([*encoder_params, *self.critic.parameters()], config.lr)
        actor_params = list(self.actor.parameters()) + (encoder_params if config.actor_trains_encoder else [])
        self.actor_optimizer = adam(actor_params, config.actor_lr)
        self.temperature_optimizer = adam([self.log_alpha], config.lr)
        self.grasp_optimizer = adam(list(self.grasp.parameters()), config.lr) if self.grasp is not None else None
        self.generator = torch.Generator(self.device).manual_seed(seed + 1)

    # --- inputs ------------------------------------------------------------------------

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    def _tensors(self, obs: Observation) -> dict[str, torch.Tensor]:
        """The agent's keys as tensors; a camera may come as its cached features (`cached_key`) instead."""
        keys = [cached_key(k) if cached_key(k) in obs else k for k in self.observation_space.spaces]
        missing = sorted(set(keys) - set(obs))
        if missing:
            raise KeyError(f"observation is missing keys {missing} the agent was built with")
        return {k: torch.as_tensor(obs[k], device=self.device) for k in keys}

    def cache_features(self, images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Pooled features of frozen cameras' frames (N, H, W, 3) -> (N, P) under `cached_key`: a replay buffer
        stores them beside the images, so updates never run the frozen trunk (`ReplayBuffer.cache_features`)."""
        return self.encoder.cache_features(images)

    def _features(
        self, encoder: ObservationEncoder, obs: dict[str, torch.Tensor], *, augment: bool
    ) -> torch.Tensor:
        images, state = encoder.split(obs)
        if augment:
            images = encoder.augment(images, self.config.encoder.aug_pad, self.generator)
        return encoder(images, state)

    # --- acting ------------------------------------------------------------------------

    @torch.no_grad()
    def act(self, obs: Observation, *, deterministic: bool = False) -> np.ndarray:
        """One observation (no batch axis) -> action float32 (A,) in [-1, 1], gripper last."""
        batch = {k: v[None] for k, v in self._tensors(obs).items()}
        features = self._features(self.encoder, batch, augment=False)
        arm = self.actor.mode(features) if deterministic else self.actor(features, self.generator)[0]
        if self.grasp is None:
            return arm[0].cpu().numpy().astype(np.float32)
        q = self.grasp(features)[0]
        grasp = int(q.argmax())
        margin = self.config.grasp_override_margin
        warmup = self.config.critic_warmup_updates
        warming_up = warmup > 0 and int(self.critic_updates) <= warmup  # the grasp critic acts with the actor
        if warming_up or (margin is not None and float(q[grasp] - q[GRASP_STAY]) <= margin):
            grasp = GRASP_STAY
        if not deterministic and self.config.grasp_epsilon > 0:
            if torch.rand((), generator=self.generator, device=self.device) < self.config.grasp_epsilon:
                grasp = int(torch.randint(3, (), generator=self.generator, device=self.device))
        action = np.append(arm[0].cpu().numpy(), GRASP_COMMANDS[grasp])
        return action.astype(np.float32)

    # --- learning ----------------------------------------------------------------------

    def update(self, batch: Batch) -> dict[str, float]:
        """`utd_ratio` critic steps over equal slices of `batch`, actor steps every `critic_actor_ratio`.

        Returns the metrics of the last step of each kind, read out of the tensors once at the end.
        """
        size = batch.action.shape[0]
        utd = self.config.utd_ratio
        if size % utd:
            raise ValueError(f"batch of {size} transitions does not split into utd_ratio={utd} minibatches")
        obs, next_obs = self._tensors(batch.obs), self._tensors(batch.next_obs)
        if self.encoder.needs_fit:  # the first batch fixes the state normalisation of both encoders
            self.encoder.fit_state(obs)
            self.target_encoder.fit_state(obs)
        action = torch.as_tensor(batch.action, dtype=torch.float32, device=self.device)
        reward = torch.as_tensor(batch.reward, dtype=torch.float32, device=self.device)
        done = torch.as_tensor(batch.terminated, dtype=torch.float32, device=self.device)
        human = torch.as_tensor(batch.intervened, dtype=torch.bool, device=self.device)
        step = size // utd
        metrics: dict[str, torch.Tensor] = {}
        for i in range(utd):
            part = slice(i * step, (i + 1) * step)
            mb_obs = {k: v[part] for k, v in obs.items()}
            mb_next = {k: v[part] for k, v in next_obs.items()}
            features, critic_metrics = self._critic_step(mb_obs, mb_next, action[part], reward[part], done[part],
                                                         human[part])
            metrics.update(critic_metrics)
            updates = int(self.critic_updates)
            if updates > self.config.critic_warmup_updates and updates % self.config.critic_actor_ratio == 0:
                if self.config.actor_trains_encoder:  # the critic's backward freed its graph: encode afresh
                    features = self._features(self.encoder, mb_obs, augment=True)
                metrics.update(self._actor_step(features, action[part], human[part]))
        metrics["critic_updates"] = self.critic_updates
        metrics["actor_updates"] = self.actor_updates
        values = torch.stack([value.detach().to(torch.float64) for value in metrics.values()]).tolist()
        return dict(zip(metrics, values))

    def _critic_step(
        self,
        obs: dict[str, torch.Tensor],
        next_obs: dict[str, torch.Tensor],
        action: torch.Tensor,
        reward: torch.Tensor,
        done: torch.Tensor,
        human: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One TD step of the ensemble (and of the grasp critic); returns the obs features it computed."""
        config = self.config
        features = self._features(self.encoder, obs, augment=True)
        with torch.no_grad():
            # The target encoder's features serve both the next action and the target Q (one pass, not two).
            next_features = self._features(self.target_encoder, next_obs, augment=True)
            next_action, next_log_prob = self.actor(next_features, self.generator)
            members = None
            if config.critic_subsample is not None:
                draw = torch.randperm(config.num_critics, generator=self.generator, device=self.device)
                members = draw[: config.critic_subsample].tolist()
            next_q = self.target_critic(next_features, next_action, members)  # (E or subsample, B)
            next_v = next_q.min(dim=0).values
            if config.backup_entropy:
                next_v = next_v - self.alpha * next_log_prob
            target = reward + config.discount * (1.0 - done) * next_v
        q = self.critic(features, action[:, : self.arm_dim])  # (E, B)
        # Sum of per-member losses: each member's gradient is exactly what it would get alone.
        loss = (q - target).pow(2).mean(dim=1).sum()
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()
        polyak_update(self.target_critic, self.critic, config.tau)
        polyak_update(self.target_encoder, self.encoder, config.tau)
        self.critic_updates += 1
        metrics = {"critic_loss": loss.detach() / config.num_critics, "q_mean": q.detach().mean()}
        if self.grasp is not None:
            metrics.update(self._grasp_step(features.detach(), next_features, obs, next_obs, action, reward, done,
                                            human))
        return features, metrics

    def _grasp_step(
        self,
        features: torch.Tensor,
        next_features: torch.Tensor,
        obs: dict[str, torch.Tensor],
        next_obs: dict[str, torch.Tensor],
        action: torch.Tensor,
        reward: torch.Tensor,
        done: torch.Tensor,
        human: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Double DQN over open/stay/close: online argmax at s', target network's value of it; plus the
        large-margin term on `human` rows."""
        config = self.config
        classes = grasp_class(action[:, -1])
        moved = (next_obs[GRIPPER] - obs[GRIPPER]).abs().amax(dim=-1) > config.grasp_moved_tol
        penalty = config.grasp_penalty * (moved & (classes != GRASP_STAY)).float()
        with torch.no_grad():
            best = self.grasp(next_features).argmax(dim=-1, keepdim=True)
            next_q = self.target_grasp(next_features).gather(-1, best).squeeze(-1)
            target = reward + penalty + config.discount * (1.0 - done) * next_q
        q_all = self.grasp(features)
        q = q_all.gather(-1, classes[:, None]).squeeze(-1)
        loss = (q - target).pow(2).mean()
        if config.grasp_margin > 0 and bool(human.any()):
            margins = torch.full_like(q_all[human], config.grasp_margin).scatter_(-1, classes[human, None], 0.0)
            loss = loss + ((q_all[human] + margins).amax(dim=-1) - q[human]).mean()
        self.grasp_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.grasp_optimizer.step()
        polyak_update(self.target_grasp, self.grasp, config.tau)
        return {"grasp_loss": loss.detach(), "grasp_q_mean": q.detach().mean()}

    def _actor_step(
        self, features: torch.Tensor, taken: torch.Tensor, human: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Maximise mean ensemble Q minus alpha log pi (plus the BC term on `human` rows' `taken` actions),
        then move the temperature toward the target entropy."""
        if not self.config.actor_trains_encoder:
            features = features.detach()
        mean, std = self.actor.distribution(features)
        action, log_prob = self.actor.sample(mean, std, self.generator)
        self.critic.requires_grad_(False)  # the actor step must not leave gradients on the critic
        q = self.critic(features, action).mean(dim=0)
        self.critic.requires_grad_(True)
        actor_loss = (self.alpha.detach() * log_prob - q).mean()
        bc_loss = torch.zeros((), device=self.device)
        if self.config.bc_weight > 0:
            # An executed action beyond the actor's range (a person's override of a residual) is followed to its edge.
            target = taken[:, : self.arm_dim].clamp(-1.0, 1.0)
            bc_loss = masked_mean((torch.tanh(mean) - target).pow(2).sum(-1), human)
            actor_loss = actor_loss + self.config.bc_weight * bc_loss
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()
        alpha_loss = temperature_loss(self.log_alpha, log_prob, self.target_entropy)
        self.temperature_optimizer.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.temperature_optimizer.step()
        self.actor_updates += 1
        return {
            "actor_loss": actor_loss.detach(),
            "bc_loss": bc_loss.detach(),
            "alpha": self.alpha.detach(),
            "entropy": -log_prob.detach().mean(),
            "temperature_loss": alpha_loss.detach(),
        }

    # --- checkpoints -------------------------------------------------------------------

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        optimizers = {
            "critic": self.critic_optimizer,
            "actor": self.actor_optimizer,
            "temperature": self.temperature_optimizer,
        }
        if self.grasp_optimizer is not None:
            optimizers["grasp"] = self.grasp_optimizer
        return optimizers

    def config_json(self) -> dict[str, Any]:
        """What config.json records: enough to rebuild the agent without the environment."""
        return {
            "kind": CHECKPOINT_KIND,
            "sac": json.loads(self.config.model_dump_json()),
            "observation_space": space_to_json(self.observation_space),
            "action_dim": self.action_dim,
            "critic_updates": int(self.critic_updates),
            "actor_updates": int(self.actor_updates),
        }

    def save(self, directory: Path, *, extra_config: dict[str, Any] | None = None,
             extra_meta: dict[str, Any] | None = None) -> Path:
        """Checkpoint everything needed to act (model.safetensors) and to resume exactly (training_state).

        `extra_config` goes into config.json, `extra_meta` (JSON) beside the resume state, for the loop.
        """
        training: dict[str, torch.Tensor] = {"rng.agent": self.generator.get_state()}
        meta: dict[str, Any] = {}
        for name, optimizer in self._optimizers().items():
            tensors, optimizer_meta = optimizer_to_tensors(optimizer, f"optim.{name}")
            training.update(tensors)
            meta[f"optim.{name}"] = optimizer_meta
        meta.update(extra_meta or {})
        return save_checkpoint(
            directory,
            weights=self.state_dict(),
            config={**self.config_json(), **(extra_config or {})},
            training=training,
            training_meta=meta,
        )

    @classmethod
    def load(cls, directory: Path, *, training: bool = False, device: str | torch.device = "cpu") -> SACAgent:
        """Rebuild an agent from a checkpoint; with `training`, also its optimisers and RNG."""
        checkpoint = load_checkpoint(directory, training=training)
        if checkpoint.config.get("kind") != CHECKPOINT_KIND:
            raise ValueError(f"checkpoint {directory}: kind is {checkpoint.config.get('kind')!r}, not {CHECKPOINT_KIND!r}")
        config = SACConfig.model_validate(checkpoint.config["sac"])
        space = space_from_json(checkpoint.config["observation_space"])
        agent = cls(space, checkpoint.config["action_dim"], config, device=device)
        agent.restore(checkpoint, training=training)
        return agent

    def restore(self, checkpoint: Checkpoint, *, training: bool) -> None:
        """Load a checkpoint's weights (and, with `training`, optimiser moments and RNG) into this agent."""
        saved = SACConfig.model_validate(checkpoint.config["sac"])
        if saved != self.config:
            raise ValueError("checkpoint: its SAC config differs from this agent's; build the agent from it instead")
        self.load_state_dict(checkpoint.weights)
        if training:
            self.generator.set_state(checkpoint.training["rng.agent"])
            for name, optimizer in self._optimizers().items():
                prefix = f"optim.{name}"
                optimizer_from_tensors(optimizer, prefix, checkpoint.training, checkpoint.training_meta[prefix])
