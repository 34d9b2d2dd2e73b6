"""Diffusion-policy speed on this machine: inference latency per chunk (p50 / p99) for DDIM with 100 and 10
steps and the flow-matching sampler with 1, 2 and 4 steps, with one and two 128x128 cameras (+ proprioception);
and training iterations/s at batch 64. The presets of `tether train diffusion`: `paper` (U-Net 256-512-1024,
ResNet-18 trunk per camera) and `cpu` (64-128, a two-stage trunk of widths 32-64).

One chunk = encode the n_obs_steps = 2 observation history once, then `steps` U-Net evaluations, batch 1,
as the actor's background thread does. Random weights: latency does not depend on them.

    .venv/bin/python -m benchmarks.diffusion [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import time

import gymnasium as gym
import numpy as np
import torch

from benchmarks.report import markdown_table, write_results
from tether.policies.diffusion import DiffusionConfig, DiffusionPolicy
from tether.policies.diffusion_train import PRESETS

SAMPLERS = [("ddpm", 100), ("ddpm", 10), ("ddpm", 4), ("ddpm", 3), ("ddpm", 2), ("flow", 4), ("flow", 2), ("flow", 1)]
SIZES = {name: DiffusionConfig.model_validate(preset["diffusion"]) for name, preset in PRESETS.items()}
TRAIN_BATCH = 64


def make_space(cameras: int) -> gym.spaces.Dict:
    """Proprioception and `cameras` 128x128 cameras; without cameras, pick_cube's task state (a state policy)."""
    dims = {"tcp_pose": 7, "tcp_vel": 6, "gripper": 1, "joints": 7} | ({} if cameras else {"cube_pos": 3, "cube_quat": 4})
    space = {f"state/{k}": gym.spaces.Box(-np.inf, np.inf, (d,), np.float32) for k, d in dims.items()}
    for name in ("front", "wrist")[:cameras]:
        space[f"images/{name}"] = gym.spaces.Box(0, 255, (128, 128, 3), np.uint8)
    return gym.spaces.Dict(space)


def random_obs(space: gym.spaces.Dict, batch: int, steps: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(rng.integers(0, 256, (batch, steps, *b.shape), dtype=np.uint8) if b.dtype == np.uint8
                               else rng.normal(size=(batch, steps, *b.shape)).astype(np.float32))
            for k, b in space.spaces.items()}


def chunk_latency(policy: DiffusionPolicy, steps: int, repeats: int, rng: np.random.Generator) -> list[float]:
    obs = random_obs(policy.observation_space, 1, policy.config.n_obs_steps, rng)
    policy.sample(obs, steps=steps)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        policy.sample(obs, steps=steps)
        times.append(time.perf_counter() - start)
    return times


def train_rate(policy: DiffusionPolicy, iterations: int, rng: np.random.Generator) -> float:
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    obs = random_obs(policy.observation_space, TRAIN_BATCH, policy.config.n_obs_steps, rng)
    action = torch.randn(TRAIN_BATCH, policy.config.horizon, policy.action_dim)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(iterations):
        loss = policy.loss(obs, action, *policy.draw(TRAIN_BATCH, generator), generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return iterations / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="Chunks timed per configuration (DDIM-100: 2).")
    parser.add_argument("--train-iterations", type=int, default=2)
    parser.add_argument("--presets", nargs="+", choices=sorted(SIZES), default=sorted(SIZES))
    parser.add_argument("--cameras", nargs="+", type=int, choices=[0, 1, 2], default=[1, 2],
                        help="128x128 cameras besides proprioception (0: state only)")
    parser.add_argument("--tag", help="suffix of the results' name, so a partial run does not replace the full one")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows, results = [], []
    for size in args.presets:
        base = SIZES[size]
        for cameras in args.cameras:
            policy = DiffusionPolicy(make_space(cameras), 4, base).eval()
            rate = train_rate(policy.train(), args.train_iterations, rng)
            policy.eval()
            for objective, steps in SAMPLERS:
                policy.config = base.model_copy(update={"objective": objective})
                repeats = 2 if steps == 100 else args.repeats
                times = np.array(chunk_latency(policy, steps, repeats, rng)) * 1000
                p50, p99 = float(np.percentile(times, 50)), float(np.percentile(times, 99))
                sampler = f"{'DDIM' if objective == 'ddpm' else 'flow'}-{steps}"
                results.append({"size": size, "cameras": cameras, "sampler": sampler, "steps": steps,
                                "p50_ms": p50, "p99_ms": p99, "repeats": repeats, "train_it_per_s": rate,
                                "parameters": sum(p.numel() for p in policy.parameters())})
                rows.append([size, cameras, sampler, p50, p99, round(1000 / p50, 1), f"{rate:.2f}"])
                print(rows[-1], flush=True)
    command = " ".join(f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                       for k, v in vars(args).items() if v is not None)
    notes = (f"`python -m benchmarks.diffusion {command}` on {os.cpu_count()} cores (shared). "
             "Latency of one chunk (n_obs_steps 2, horizon 16, batch 1) in ms; chunks/s = 1000 / p50; an 8-action "
             "chunk at 10 Hz leaves 800 ms. Training: iterations/s at batch 64 for that size and camera count.")
    table = markdown_table(["size", "cameras", "sampler", "p50 ms", "p99 ms", "chunks/s", "train it/s"], rows)
    name = "diffusion" + (f"_{args.tag}" if args.tag else "")
    path = write_results(name, {"settings": vars(args), "results": results}, table, notes)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
