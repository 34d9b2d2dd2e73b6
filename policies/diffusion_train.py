"""Training a diffusion policy from an episode store: a budget of gradient steps over sequence windows of the
training episodes (shuffled afresh every pass), validation loss on held-out episodes, periodic rollouts in an
env (success rate picks the best-k checkpoints, the loss does not), EMA weights (diffusers EMAModel) for acting,
a diffusers learning-rate schedule, resume from the last checkpoint.

Run folder:

    <out>/last/         EMA policy + training state (raw weights, optimiser, RNG, history): resume point
    <out>/best/         the policy with the highest rollout success (lowest validation loss without rollouts)
    <out>/topk/<name>/  the best `top_k` policies (step_NNNNNNN)
    <out>/report.json   per row (every checkpoint_every steps) train / validation loss, rollout success; report.png
"""

from __future__ import annotations

import copy
import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
import torch.distributed as dist
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from pydantic import Field, model_validator
from torch.optim.lr_scheduler import LRScheduler
from tqdm import tqdm

from tether.datasets.sampler import SequenceSampler
from tether.datasets.store import EpisodeStore
from tether.policies.checkpoint import load_checkpoint, optimizer_from_tensors, optimizer_to_tensors
from tether import spaces
from tether.policies.diffusion import DiffusionConfig, DiffusionPolicy, actions_to_targets, chunked_policy
from tether.policies.networks import StrictConfig
from tether.policies.registry import ResetOnEpisode
from tether.policies.sac_loop import EVAL_SEEDS, EvalResult, evaluate

log = logging.getLogger(__name__)

REPORT_JSON, REPORT_PNG = "report.json", "report.png"


class TrainConfig(StrictConfig):
    """The optimisation and its cadence (Diffusion Policy's training recipe), budgeted in gradient steps."""

    steps: int = Field(20_000, ge=1)
    """Gradient steps in all (the budget: a step count means the same whatever the number of demos)."""
    batch_size: int = Field(64, ge=1)
    """Windows per gradient step."""
    lr: float = Field(1e-4, gt=0)
    """AdamW learning rate after warm-up."""
    lr_schedule: Literal["cosine", "linear", "constant_with_warmup"] = "cosine"
    """diffusers learning-rate schedule after the warm-up (cosine: decays to zero at the last step)."""
    weight_decay: float = Field(1e-6, ge=0)
    """AdamW weight decay."""
    betas: tuple[float, float] = (0.95, 0.999)
    """AdamW betas."""
    warmup_steps: int = Field(500, ge=0)
    """Linear learning-rate warm-up steps."""
    ema_power: float = Field(0.75, gt=0)
    """EMA warm-up exponent (diffusers EMAModel): decay = 1 - (1 + step)^-power, capped at ema_max_decay."""
    ema_max_decay: float = Field(0.9999, ge=0, lt=1)
    """Cap of the EMA decay."""
    val_fraction: float = Field(0.1, ge=0, lt=1)
    """Share of episodes held out for the validation loss (at least one when there are two or more)."""
    checkpoint_every: int = Field(1_000, ge=1)
    """Gradient steps between report rows (train and validation loss) and saves of `last`; the last step always."""
    eval_every: int = Field(5_000, ge=0)
    """Gradient steps between twin rollouts, a multiple of checkpoint_every (0: none; the best checkpoint is then
    the lowest validation loss); the last step always rolls out."""
    eval_episodes: int = Field(10, ge=1)
    """Rollouts per evaluation."""
    top_k: int = Field(3, ge=1)
    """Checkpoints kept under topk/."""

    @model_validator(mode="after")
    def _cadence(self) -> TrainConfig:
        if self.eval_every % self.checkpoint_every:
            raise ValueError(f"eval_every {self.eval_every} must be a multiple of checkpoint_every "
                             f"{self.checkpoint_every} (rollouts happen at report rows)")
        return self


PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {"diffusion": {"down_dims": (64, 128), "step_embed_dim": 32,
                          "vision": {"widths": (32, 64), "blocks_per_stage": 1, "keypoints": 16, "latent_dim": 32}},
            "diffusion_train": {"steps": 6_000, "lr": 1e-3, "warmup_steps": 50}},
    "paper": {"diffusion": {}, "diffusion_train": {}},
}
"""Named recipes, each the `diffusion:` and `diffusion_train:` sections of a config file. `cpu` (the default of
`tether train diffusion`): a U-Net of 64-128 channels and a two-stage trunk per camera, trained 6,000 steps at a
higher learning rate; on state pick_cube from 100 demos it succeeds in 0.98 of episodes after about 15 minutes
of one CPU core (benchmarks/README.md, section diffusion_success_state). `paper`: Diffusion Policy's sizes and
schedule (not measured here: about 0.1 it/s on this CPU), for a GPU."""
DEFAULT_PRESET = "cpu"


@dataclass
class TrainReport:
    """What a run did: one row per `checkpoint_every` steps, the checkpoints it kept, its speed."""

    rows: list[dict[str, float]] = field(default_factory=list)
    topk: list[dict[str, Any]] = field(default_factory=list)
    train_episodes: list[int] = field(default_factory=list)
    val_episodes: list[int] = field(default_factory=list)
    steps: int = 0
    steps_per_second: float = 0.0
    processes: int = 1

    @property
    def best(self) -> dict[str, Any] | None:
        return self.topk[0] if self.topk else None


def split_episodes(n_episodes: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Shuffle episode indices and hold out `val_fraction` of them (at least one when there are two or more)."""
    order = np.random.default_rng(seed).permutation(n_episodes).tolist()
    n_val = min(n_episodes - 1, max(1 if val_fraction > 0 else 0, round(val_fraction * n_episodes)))
    return sorted(order[n_val:]), sorted(order[:n_val])


def episode_windows(store: EpisodeStore, sampler: SequenceSampler, episodes: list[int]) -> np.ndarray:
    """Indices of the sampler's windows that belong to `episodes` (the sampler lists episodes in order)."""
    counts = [max(0, info.stop - info.start + sampler.pad_before + sampler.pad_after - sampler.horizon + 1)
              for info in store.episodes]
    if sum(counts) != len(sampler):
        raise RuntimeError(f"{store.path}: {len(sampler)} windows, expected {sum(counts)} from the episode lengths")
    starts = np.concatenate([[0], np.cumsum(counts)])
    return np.concatenate([np.arange(starts[e], starts[e + 1]) for e in episodes] or [np.zeros(0, np.int64)])


def load_batch(sampler: SequenceSampler, indices: np.ndarray, device: torch.device | str = "cpu",
               ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Windows -> observation history (B, To, ...) per key and actions (B, H, A) as tensors on `device`."""
    items = [sampler[int(i)] for i in indices]
    obs = {key[len("obs/"):]: torch.as_tensor(np.stack([item[key] for item in items])).to(device)
           for key in items[0] if key.startswith("obs/")}
    return obs, torch.as_tensor(np.stack([item["action"] for item in items])).to(device)


def rollout(policy: DiffusionPolicy, env: gym.Env, episodes: int, *, seed: int, record: bool = False) -> EvalResult:
    """Success of `policy` over `episodes` episodes (seeds seed, seed + 1, ...) with synchronous chunks."""
    executor = chunked_policy(policy, asynchronous=False)
    return evaluate(executor.act, ResetOnEpisode(env, executor), episodes, seed=seed, record=record)


def train_diffusion(
    store: EpisodeStore,
    observation_space: gym.spaces.Dict,
    config: DiffusionConfig,
    train: TrainConfig,
    *,
    seed: int = 0,
    eval_env: gym.Env | None = None,
    out_dir: Path | None = None,
    resume: bool = True,
    progress: bool = True,
    device: torch.device | str = "cpu",
) -> tuple[DiffusionPolicy, TrainReport]:
    """Train on the store's windows on `device`; returns the EMA policy of the last step and the report.

    Random draws (noise, diffusion times, crops, shuffles) come from CPU generators whatever the device, so a
    seed picks the same batches and draws on a GPU as on the CPU."""
    torch.manual_seed(seed)
    missing = [k for k in observation_space.spaces if k not in store.spec.obs]
    if missing:
        raise ValueError(f"{store.path}: no observation {missing} for the policy (it has {list(store.spec.obs)})")
    misshapen = [k for k, box in observation_space.spaces.items() if tuple(store.spec.obs[k][0]) != box.shape]
    if misshapen:
        raise ValueError(f"{store.path}: observation {misshapen} differs in shape from the policy's")
    keys = sorted(observation_space.spaces)
    actions = store.load("action")
    if config.action_targets == "absolute":
        config = config.model_copy(update={"translation_scale": translation_scale(store)})
        actions = actions_to_targets(actions, store.load(spaces.TCP_POSE), config.translation_scale)
    sampler = SequenceSampler(store, config.n_obs_steps, config.horizon, obs_keys=keys, actions=actions)
    report = TrainReport()
    report.train_episodes, report.val_episodes = split_episodes(store.n_episodes, train.val_fraction, seed)
    train_windows = episode_windows(store, sampler, report.train_episodes)
    val_windows = episode_windows(store, sampler, report.val_episodes)

    rank, world = distributed_rank_world()
    report.processes = world
    if train.batch_size % world or len(train_windows) < train.batch_size:
        raise ValueError(f"{store.path}: batch_size {train.batch_size} needs to divide among {world} processes and "
                         f"not exceed the {len(train_windows)} training windows")
    model = DiffusionPolicy(observation_space, store.spec.action_dim, config)
    model.normaliser.fit({**{k: store.load(k) for k in model.state_keys}, "action": actions})
    device = torch.device(device)
    model.to(device)
    average = copy.deepcopy(model).requires_grad_(False).eval()  # acts, validates and is saved: the EMA weights
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, betas=train.betas, weight_decay=train.weight_decay)
    schedule = get_scheduler(train.lr_schedule, optimizer, num_warmup_steps=train.warmup_steps,
                             num_training_steps=train.steps)
    trained = model if world == 1 else torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    steps_per_pass = len(train_windows) // train.batch_size  # full batches only, so every rank's shard is equal
    # `generator` draws noise and diffusion times for the global batch, identically on every rank; `crops` is per rank.
    generator = torch.Generator().manual_seed(seed)
    crops = torch.Generator().manual_seed(seed * 1000 + rank + 1)
    if out_dir is not None and resume and (out_dir / "last").is_dir():
        _restore(out_dir / "last", model, average, optimizer, schedule, (generator, crops), report)
        log.info("resumed %s at step %d", out_dir / "last", report.steps)
    ema = EMAModel(average.parameters(), decay=train.ema_max_decay, use_ema_warmup=True, power=train.ema_power)
    ema.optimization_step = report.steps
    leader = rank == 0
    shard = slice(rank * train.batch_size // world, (rank + 1) * train.batch_size // world)

    started, start_steps = time.perf_counter(), report.steps
    bar = tqdm(total=train.steps, initial=report.steps, desc="diffusion", disable=not (progress and leader))
    losses: list[float] = []
    order, order_pass = None, -1
    model.train()
    while report.steps < train.steps:
        pass_index, position = divmod(report.steps, steps_per_pass)
        if pass_index != order_pass:  # a fresh shuffle per pass over the windows, a function of (seed, pass)
            order, order_pass = np.random.default_rng([seed, pass_index]).permutation(train_windows), pass_index
        batch = order[position * train.batch_size : (position + 1) * train.batch_size]
        noise, times = model.draw(train.batch_size, generator)
        obs, action = load_batch(sampler, batch[shard], device)
        args = (obs, action, noise[shard].to(device), times[shard].to(device), crops)
        loss = model.loss(*args) if world == 1 else _ddp_loss(trained, *args)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # DDP averages the gradients of the equal shards: the global batch's gradient
        optimizer.step()
        schedule.step()
        ema.step(model.parameters())
        report.steps += 1
        bar.update(1)
        losses.append(_mean_over_ranks(loss.detach(), world))
        last_step = report.steps == train.steps
        if report.steps % train.checkpoint_every and not last_step:
            continue
        if not leader:
            losses = []
            continue
        ema.copy_to(average.parameters())
        row: dict[str, float] = {"step": report.steps, "train_loss": float(np.mean(losses)),
                                 "lr": optimizer.param_groups[0]["lr"]}
        losses = []
        if len(val_windows):
            row["val_loss"] = validation_loss(average, sampler, val_windows, train.batch_size, seed)
        evaluating = bool(eval_env is not None and train.eval_every and (
            report.steps % train.eval_every == 0 or last_step))
        if evaluating:
            row["success_rate"] = rollout(average, eval_env, train.eval_episodes, seed=EVAL_SEEDS + seed).success_rate
        report.rows.append(row)
        bar.set_postfix({k: round(v, 4) for k, v in row.items() if k in ("train_loss", "val_loss", "success_rate")})
        if out_dir is not None:
            selects_by_loss = eval_env is None or not train.eval_every
            if evaluating or (selects_by_loss and "val_loss" in row):
                _keep_topk(out_dir, average, row, train.top_k, report)
            _save_last(out_dir, model, average, optimizer, schedule, (generator, crops), report)
        model.train()
    bar.close()
    report.steps_per_second = (report.steps - start_steps) / max(time.perf_counter() - started, 1e-9)
    if out_dir is not None and leader:
        write_report(out_dir, report)
    return average, report


def translation_scale(store: EpisodeStore) -> float:
    """Metres per unit of translation action in the store's rig: what its absolute targets are measured by."""
    try:
        return float(store.rig["arm"]["action_scale"][0])  # type: ignore[index]
    except (TypeError, KeyError, IndexError):
        raise ValueError(f"{store.path}: no rig snapshot with arm.action_scale, so actions cannot become "
                         "absolute targets (train with action_targets: delta)") from None


def distributed_rank_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 without torch.distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _ddp_loss(trained: torch.nn.parallel.DistributedDataParallel, *args: Any) -> torch.Tensor:
    """DDP hooks gradient all-reduce on `forward`; the policy's training entry point is `loss`, so route it there."""
    module = trained.module
    forward = module.forward
    module.forward = module.loss
    try:
        return trained(*args)
    finally:
        module.forward = forward


def _mean_over_ranks(value: torch.Tensor, world: int) -> float:
    if world > 1:
        dist.all_reduce(value)
        value = value / world
    return value.item()


@torch.no_grad()
def validation_loss(policy: DiffusionPolicy, sampler: SequenceSampler, windows: np.ndarray, batch_size: int,
                    seed: int) -> float:
    """Mean loss over held-out windows with fixed noise (same seed every time), so rows compare."""
    policy.eval()
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for batch in np.array_split(windows, math.ceil(len(windows) / batch_size)):
        noise, times = policy.draw(len(batch), generator)
        obs, action = load_batch(sampler, batch, policy.device)
        loss = policy.loss(obs, action, noise.to(policy.device), times.to(policy.device), generator)
        losses.append(loss.item() * len(batch))
    return float(sum(losses) / len(windows))


def _score(row: dict[str, float]) -> tuple[float, float]:
    """Higher is better: success rate first, then lower validation loss, so ties go to the better fit."""
    return row.get("success_rate", 0.0), -row.get("val_loss", 0.0)


def _keep_topk(out_dir: Path, policy: DiffusionPolicy, row: dict[str, float], k: int, report: TrainReport) -> None:
    name = f"step_{int(row['step']):07d}"
    candidates = sorted([*report.topk, {"name": name, **row}], key=lambda r: _score(r), reverse=True)
    kept, dropped = candidates[:k], candidates[k:]
    for entry in dropped:
        shutil.rmtree(out_dir / "topk" / entry["name"], ignore_errors=True)
    if any(entry["name"] == name for entry in kept):
        extra = {"train": row}
        policy.save(out_dir / "topk" / name, extra_config=extra)
        if kept[0]["name"] == name:
            policy.save(out_dir / "best", extra_config=extra)
    report.topk = kept


def _save_last(out_dir: Path, model: DiffusionPolicy, average: DiffusionPolicy, optimizer: torch.optim.Optimizer,
               schedule: LRScheduler, generators: tuple[torch.Generator, ...], report: TrainReport) -> None:
    tensors, optimizer_meta = optimizer_to_tensors(optimizer, "optim")
    training = {**{f"model.{k}": v for k, v in model.state_dict().items()}, **tensors,
                **{f"rng.{i}": g.get_state() for i, g in enumerate(generators)}}
    meta = {"optim": optimizer_meta, "schedule": schedule.state_dict(), "report": asdict(report)}
    average.save(out_dir / "last", extra_config={"step": report.steps}, training=training,
                 training_meta=meta)


def _restore(directory: Path, model: DiffusionPolicy, average: DiffusionPolicy, optimizer: torch.optim.Optimizer,
             schedule: LRScheduler, generators: tuple[torch.Generator, ...], report: TrainReport) -> None:
    """Load the resume state of `last` into the live objects (report.steps says where to go on from)."""
    checkpoint = load_checkpoint(directory, training=True)
    config = checkpoint.config.get("diffusion")
    if config != json.loads(model.config.model_dump_json()):
        raise ValueError(f"checkpoint {directory}: its diffusion config differs from this run's (use a new --out)")
    average.load_state_dict(checkpoint.weights)
    model.load_state_dict({k[len("model."):]: v for k, v in checkpoint.training.items() if k.startswith("model.")})
    optimizer_from_tensors(optimizer, "optim", checkpoint.training, checkpoint.training_meta["optim"])
    for index, generator in enumerate(generators):
        generator.set_state(checkpoint.training[f"rng.{index}"])
    saved = checkpoint.training_meta["report"]
    schedule.load_state_dict(checkpoint.training_meta["schedule"])
    for name in ("rows", "topk", "steps"):
        setattr(report, name, saved[name])


def write_report(out_dir: Path, report: TrainReport) -> None:
    """report.json and report.png (train / validation loss and rollout success against gradient steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / REPORT_JSON).write_text(json.dumps({**asdict(report), "best": report.best}, indent=2) + "\n")
    figure, (loss_axis, success_axis) = plt.subplots(1, 2, figsize=(10, 3.5))
    steps = [row["step"] for row in report.rows]
    loss_axis.plot(steps, [row["train_loss"] for row in report.rows], label="train")
    val = [(row["step"], row["val_loss"]) for row in report.rows if "val_loss" in row]
    if val:
        loss_axis.plot(*zip(*val), label="validation (EMA)")
    loss_axis.set(xlabel="gradient step", ylabel="loss", yscale="log", title="loss")
    loss_axis.legend()
    success = [(row["step"], row["success_rate"]) for row in report.rows if "success_rate" in row]
    if success:
        success_axis.plot(*zip(*success), marker="o")
    success_axis.set(xlabel="gradient step", ylabel="success rate", ylim=(-0.05, 1.05), title="rollout success")
    figure.tight_layout()
    figure.savefig(out_dir / REPORT_PNG, dpi=100)
    plt.close(figure)
