"""Training a diffusion policy from an episode store: epochs over sequence windows of the training episodes,
validation loss on held-out episodes, periodic rollouts in an env (success rate picks the best-k
checkpoints, the loss does not), EMA weights for acting, resume from the last checkpoint.

Run folder:

    <out>/last/         EMA policy + training state (raw weights, optimiser, RNG, history): resume point
    <out>/best/         the policy with the highest rollout success (lowest validation loss without rollouts)
    <out>/topk/<name>/  the best `top_k` policies
    <out>/report.json   per-epoch train / validation loss, rollout success; report.png the same as curves
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.distributed as dist
from pydantic import Field
from tqdm import tqdm

from tether.datasets.sampler import SequenceSampler
from tether.datasets.store import EpisodeStore
from tether.policies.checkpoint import load_checkpoint, optimizer_from_tensors, optimizer_to_tensors
from tether.policies.diffusion import (DiffusionConfig, DiffusionPolicy, chunked_policy, ema_copy, ema_decay,
                                      ema_update)
from tether.policies.networks import StrictConfig
from tether.policies.registry import ResetOnEpisode
from tether.policies.sac_loop import EvalResult, evaluate

log = logging.getLogger(__name__)

REPORT_JSON, REPORT_PNG = "report.json", "report.png"


class TrainConfig(StrictConfig):
    """The optimisation and its cadence (Diffusion Policy's training defaults)."""

    epochs: int = Field(100, ge=1)
    """Passes over the training windows."""
    batch_size: int = Field(64, ge=1)
    """Windows per gradient step."""
    lr: float = Field(1e-4, gt=0)
    """AdamW learning rate after warm-up (cosine decay to zero over the run)."""
    weight_decay: float = Field(1e-6, ge=0)
    """AdamW weight decay."""
    betas: tuple[float, float] = (0.95, 0.999)
    """AdamW betas."""
    warmup_steps: int = Field(500, ge=0)
    """Linear learning-rate warm-up steps."""
    ema_power: float = Field(0.75, gt=0)
    """EMA warm-up exponent: decay = 1 - (1 + step)^-power."""
    ema_max_decay: float = Field(0.9999, ge=0, lt=1)
    """Cap of the EMA decay."""
    val_fraction: float = Field(0.1, ge=0, lt=1)
    """Share of episodes held out for the validation loss (at least one when there are two or more)."""
    eval_every: int = Field(10, ge=0)
    """Epochs between rollout evaluations (0: none; the best checkpoint is then the lowest validation loss)."""
    eval_episodes: int = Field(10, ge=1)
    """Rollouts per evaluation."""
    top_k: int = Field(3, ge=1)
    """Checkpoints kept under topk/."""


@dataclass
class TrainReport:
    """What a run did: one row per epoch, the checkpoints it kept, its speed."""

    epochs: list[dict[str, float]] = field(default_factory=list)
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


def load_batch(sampler: SequenceSampler, indices: np.ndarray) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Windows -> observation history (B, To, ...) per key and actions (B, H, A) as tensors."""
    items = [sampler[int(i)] for i in indices]
    obs = {key[len("obs/"):]: torch.as_tensor(np.stack([item[key] for item in items]))
           for key in items[0] if key.startswith("obs/")}
    return obs, torch.as_tensor(np.stack([item["action"] for item in items]))


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at `total` steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def rollout(policy: DiffusionPolicy, env: gym.Env, episodes: int, *, seed: int, record: bool = False) -> EvalResult:
    """Success of `policy` over `episodes` episodes (seeds seed, seed + 1, ...) with synchronous chunks."""
    executor = chunked_policy(policy, asynchronous=False, seed=seed)
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
) -> tuple[DiffusionPolicy, TrainReport]:
    """Train on the store's windows; returns the EMA policy of the last epoch and the report."""
    torch.manual_seed(seed)
    missing = [k for k in observation_space.spaces if k not in store.spec.obs]
    if missing:
        raise ValueError(f"{store.path}: no observation {missing} for the policy (it has {list(store.spec.obs)})")
    misshapen = [k for k, box in observation_space.spaces.items() if tuple(store.spec.obs[k][0]) != box.shape]
    if misshapen:
        raise ValueError(f"{store.path}: observation {misshapen} differs in shape from the policy's")
    keys = sorted(observation_space.spaces)
    sampler = SequenceSampler(store, config.n_obs_steps, config.horizon, obs_keys=keys)
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
    model.normaliser.fit({**{k: store.load(k) for k in model.state_keys}, "action": store.load("action")})
    average = ema_copy(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, betas=train.betas, weight_decay=train.weight_decay)
    trained = model if world == 1 else torch.nn.parallel.DistributedDataParallel(model)
    steps_per_epoch = len(train_windows) // train.batch_size  # full batches only, so every rank's shard is equal
    total = steps_per_epoch * train.epochs
    # `generator` draws noise and diffusion times for the global batch, identically on every rank; `crops` is per rank.
    generator = torch.Generator().manual_seed(seed)
    crops = torch.Generator().manual_seed(seed * 1000 + rank + 1)
    first_epoch = 0
    if out_dir is not None and resume and (out_dir / "last").is_dir():
        first_epoch = _restore(out_dir / "last", model, average, optimizer, (generator, crops), report)
        log.info("resumed %s at epoch %d (step %d)", out_dir / "last", first_epoch, report.steps)
    leader = rank == 0
    shard = slice(rank * train.batch_size // world, (rank + 1) * train.batch_size // world)

    started, start_steps = time.perf_counter(), report.steps
    bar = tqdm(range(first_epoch, train.epochs), desc="diffusion", disable=not (progress and leader),
               initial=first_epoch, total=train.epochs)
    for epoch in bar:
        model.train()
        order = np.random.default_rng([seed, epoch]).permutation(train_windows)
        losses = []
        for step in range(steps_per_epoch):
            batch = order[step * train.batch_size : (step + 1) * train.batch_size]
            noise, times = model.draw(train.batch_size, generator)
            obs, action = load_batch(sampler, batch[shard])
            args = (obs, action, noise[shard], times[shard], crops)
            loss = model.loss(*args) if world == 1 else _ddp_loss(trained, *args)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # DDP averages the gradients of the equal shards: the global batch's gradient
            for group in optimizer.param_groups:  # a pure function of the step, so resume needs no scheduler state
                group["lr"] = train.lr * lr_factor(report.steps, train.warmup_steps, total)
            optimizer.step()
            ema_update(average, model, ema_decay(report.steps, train.ema_power, train.ema_max_decay))
            report.steps += 1
            losses.append(_mean_over_ranks(loss.detach(), world))
        if not leader:
            continue
        row: dict[str, float] = {"epoch": epoch + 1, "step": report.steps, "train_loss": float(np.mean(losses)),
                                 "lr": optimizer.param_groups[0]["lr"]}
        if len(val_windows):
            row["val_loss"] = validation_loss(average, sampler, val_windows, train.batch_size, seed)
        evaluating = bool(eval_env is not None and train.eval_every and (
            (epoch + 1) % train.eval_every == 0 or epoch + 1 == train.epochs))
        if evaluating:
            row["success_rate"] = rollout(average, eval_env, train.eval_episodes, seed=1_000_000 + seed).success_rate
        report.epochs.append(row)
        bar.set_postfix({k: round(v, 4) for k, v in row.items() if k in ("train_loss", "val_loss", "success_rate")})
        if out_dir is not None:
            selects_by_loss = eval_env is None or not train.eval_every
            if evaluating or (selects_by_loss and "val_loss" in row):
                _keep_topk(out_dir, average, row, train.top_k, report)
            _save_last(out_dir, model, average, optimizer, (generator, crops), report, epoch + 1)
    report.steps_per_second = (report.steps - start_steps) / max(time.perf_counter() - started, 1e-9)
    if out_dir is not None and leader:
        write_report(out_dir, report)
    return average, report


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
    """Mean loss over held-out windows with fixed noise (same seed every time), so epochs compare."""
    policy.eval()
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for batch in np.array_split(windows, math.ceil(len(windows) / batch_size)):
        noise, times = policy.draw(len(batch), generator)
        losses.append(policy.loss(*load_batch(sampler, batch), noise, times, generator).item() * len(batch))
    return float(sum(losses) / len(windows))


def _score(row: dict[str, float]) -> tuple[float, float]:
    """Higher is better: success rate first, then lower validation loss, so ties go to the better fit."""
    return row.get("success_rate", 0.0), -row.get("val_loss", 0.0)


def _keep_topk(out_dir: Path, policy: DiffusionPolicy, row: dict[str, float], k: int, report: TrainReport) -> None:
    name = f"epoch_{int(row['epoch']):04d}"
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
               generators: tuple[torch.Generator, ...], report: TrainReport, epoch: int) -> None:
    tensors, optimizer_meta = optimizer_to_tensors(optimizer, "optim")
    training = {**{f"model.{k}": v for k, v in model.state_dict().items()}, **tensors,
                **{f"rng.{i}": g.get_state() for i, g in enumerate(generators)}}
    meta = {"optim": optimizer_meta, "epoch": epoch, "report": asdict(report)}
    average.save(out_dir / "last", extra_config={"epoch": epoch, "step": report.steps}, training=training,
                 training_meta=meta)


def _restore(directory: Path, model: DiffusionPolicy, average: DiffusionPolicy, optimizer: torch.optim.Optimizer,
             generators: tuple[torch.Generator, ...], report: TrainReport) -> int:
    """Load the resume state of `last` into the live objects; returns the epoch to continue from."""
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
    for name in ("epochs", "topk", "steps"):
        setattr(report, name, saved[name])
    return int(checkpoint.training_meta["epoch"])


def write_report(out_dir: Path, report: TrainReport) -> None:
    """report.json and report.png (train / validation loss and rollout success per epoch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / REPORT_JSON).write_text(json.dumps({**asdict(report), "best": report.best}, indent=2) + "\n")
    figure, (loss_axis, success_axis) = plt.subplots(1, 2, figsize=(10, 3.5))
    epochs = [row["epoch"] for row in report.epochs]
    loss_axis.plot(epochs, [row["train_loss"] for row in report.epochs], label="train")
    val = [(row["epoch"], row["val_loss"]) for row in report.epochs if "val_loss" in row]
    if val:
        loss_axis.plot(*zip(*val), label="validation (EMA)")
    loss_axis.set(xlabel="epoch", ylabel="loss", yscale="log", title="loss")
    loss_axis.legend()
    success = [(row["epoch"], row["success_rate"]) for row in report.epochs if "success_rate" in row]
    if success:
        success_axis.plot(*zip(*success), marker="o")
    success_axis.set(xlabel="epoch", ylabel="success rate", ylim=(-0.05, 1.05), title="rollout success")
    figure.tight_layout()
    figure.savefig(out_dir / REPORT_PNG, dpi=100)
    plt.close(figure)
