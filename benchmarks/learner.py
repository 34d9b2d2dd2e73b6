"""Gradient updates per second of the SAC learner on this machine, stacked ensemble vs a naive loop.

One update = one critic step (+ grasp critic) on a batch of 256, with the actor + temperature step on
the recipe's schedule (SACConfig defaults: once per environment step, i.e. every utd_ratio critic steps),
and random-shift augmentation for images. Configurations: state only (24-D), one 128x128 camera,
two cameras; critic ensembles of 2 and 10 (REDQ target pair). The naive variant swaps the agent's
stacked critic ensemble for E separate MLP modules (same sizes, same init scheme), everything else
identical (same optimiser, same REDQ subset evaluation), and is timed in the same process in
alternating rounds with the agent.

    .venv/bin/python -m benchmarks.learner [--threads 1 2] [--cameras 0 1 2] [--seconds 6]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from dataclasses import replace

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from benchmarks.report import markdown_table, write_results
from tether.policies.networks import EncoderConfig, mlp
from tether.policies.sac import SACAgent, SACConfig, adam
from tether.spaces import GRIPPER, JOINTS, TCP_POSE, TCP_VEL
from tether.types import Batch

BATCH = 256
ACTION_DIM = 4


class LoopEnsemble(nn.Module):
    """The naive critic ensemble: E separate MLPs called one after another."""

    def __init__(self, members: int, feature_dim: int, action_dim: int, hidden_dims: tuple[int, ...]) -> None:
        super().__init__()
        self.members = nn.ModuleList(
            mlp(feature_dim + action_dim, hidden_dims, 1, layer_norm=True) for _ in range(members)
        )

    def forward(
        self, features: torch.Tensor, action: torch.Tensor, members: list[int] | None = None
    ) -> torch.Tensor:
        x = torch.cat([features, action], dim=-1)
        chosen = range(len(self.members)) if members is None else members
        return torch.stack([self.members[e](x).squeeze(-1) for e in chosen])


def make_space(cameras: int) -> gym.spaces.Dict:
    space = {key: gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
             for key, dim in {TCP_POSE: 7, TCP_VEL: 6, GRIPPER: 1, JOINTS: 7, "state/cube_pos": 3}.items()}
    for name in ("front", "wrist")[:cameras]:
        space[f"images/{name}"] = gym.spaces.Box(0, 255, (128, 128, 3), np.uint8)
    return gym.spaces.Dict(space)


def make_batch(space: gym.spaces.Dict, rng: np.random.Generator, rows: int) -> Batch:
    def obs() -> dict[str, np.ndarray]:
        return {k: (rng.integers(0, 256, (rows, *b.shape), dtype=np.uint8) if b.dtype == np.uint8
                    else rng.normal(size=(rows, *b.shape)).astype(np.float32)) for k, b in space.spaces.items()}

    return Batch(obs=obs(), action=rng.uniform(-1, 1, (rows, ACTION_DIM)).astype(np.float32),
                 reward=rng.random(rows).astype(np.float32), next_obs=obs(),
                 terminated=rng.random(rows) < 0.05, intervened=rng.random(rows) < 0.5)


def make_naive(agent: SACAgent) -> SACAgent:
    """Swap the stacked ensemble (and its target and optimiser) for the per-member modules."""
    config = agent.config
    agent.critic = LoopEnsemble(config.num_critics, agent.encoder.feature_dim, agent.arm_dim, config.hidden_dims)
    agent.target_critic = copy.deepcopy(agent.critic).requires_grad_(False)
    encoder_params = [p for p in agent.encoder.parameters() if p.requires_grad]
    agent.critic_optimizer = adam([*encoder_params, *agent.critic.parameters()], config.lr)
    return agent


def compare(agents: list[SACAgent], batch: Batch, seconds: float, rounds: int) -> list[tuple[float, float, int]]:
    """Critic updates/s, process CPU ms per critic update and critic update count of each agent, measured in
    alternating rounds so that a change of machine load (other processes on a shared CPU) hits every variant
    alike. One `agent.update` call is utd_ratio critic updates."""
    for agent in agents:
        agent.update(batch)  # warm-up: allocator, oneDNN kernels
    counts, elapsed, cpu = [0] * len(agents), [0.0] * len(agents), [0.0] * len(agents)
    for _ in range(rounds):
        for i, agent in enumerate(agents):
            start, start_cpu = time.perf_counter(), time.process_time()
            while True:
                agent.update(batch)
                counts[i] += 1
                if time.perf_counter() - start >= seconds / rounds:
                    break
            elapsed[i] += time.perf_counter() - start
            cpu[i] += time.process_time() - start_cpu
    utd = agents[0].config.utd_ratio
    return [(utd * n / t, 1e3 * c / (utd * n), utd * n) for n, t, c in zip(counts, elapsed, cpu)]


def cached(agent: SACAgent, batch: Batch) -> tuple[Batch, float]:
    """`batch` as a learner with a frozen encoder samples it (cached features in place of the images), and the
    milliseconds that caching costs per frame of all cameras (paid once, when a frame enters the buffer)."""
    keys = agent.encoder.cached_keys
    start, frames = time.perf_counter(), 32
    for i in range(frames):  # one frame at a time, as the learner adds them
        agent.cache_features({k: batch.obs[k][i : i + 1] for k in keys})
    per_frame_ms = 1e3 * (time.perf_counter() - start) / frames

    def swap(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        images = {k: obs[k] for k in keys}
        return {**{k: v for k, v in obs.items() if k not in images}, **agent.cache_features(images)}

    return replace(batch, obs=swap(batch.obs), next_obs=swap(batch.next_obs)), per_frame_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch intra-op thread counts (the learner node uses 1)")
    parser.add_argument("--cameras", type=int, nargs="+", default=[0, 1, 2], choices=[0, 1, 2],
                        help="observations to time: 0 state only, 1 or 2 cameras")
    parser.add_argument("--seconds", type=float, default=6.0, help="timing window per variant and configuration")
    parser.add_argument("--rounds", type=int, default=3, help="alternating agent/naive rounds per window")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows, results = [], []
    load_before = os.getloadavg()
    for threads in args.threads:
        torch.set_num_threads(threads)
        for cameras in args.cameras:
            space = make_space(cameras)
            for frozen in (False, True) if cameras else (False,):
                label = f"{cameras} camera(s) 128x128, {'frozen' if frozen else 'trained'} encoder" if cameras else "state"
                for members in (2, 10):
                    config = SACConfig(num_critics=members, critic_subsample=2 if members > 2 else None,
                                       batch_size=BATCH, encoder=EncoderConfig(freeze_backbone=frozen))
                    agents = [SACAgent(space, ACTION_DIM, config), make_naive(SACAgent(space, ACTION_DIM, config))]
                    batch = make_batch(space, rng, BATCH * config.utd_ratio)
                    encode_ms = None
                    if frozen:
                        batch, encode_ms = cached(agents[0], batch)
                    (ours, ours_cpu, n_ours), (naive, naive_cpu, n_naive) = compare(
                        agents, batch, args.seconds, args.rounds)
                    results.append({"obs": label, "cameras": cameras, "frozen_encoder": frozen, "ensemble": members,
                                    "batch": BATCH, "threads": threads, "updates_per_s": ours,
                                    "naive_updates_per_s": naive, "cpu_ms_per_update": ours_cpu,
                                    "naive_cpu_ms_per_update": naive_cpu, "speedup": ours / naive,
                                    "timed_updates": [n_ours, n_naive], "cache_ms_per_frame": encode_ms})
                    rows.append([label, members, threads, f"{ours:.2f}", f"{naive:.2f}", f"{ours / naive:.2f}x",
                                 f"{ours_cpu:.1f}", f"{naive_cpu:.1f}", "" if encode_ms is None else f"{encode_ms:.2f}"])
                print(f"{label:>18} E={members:<2} threads {threads}  tether {ours:7.2f}/s  naive {naive:7.2f}/s  "
                      f"x{ours / naive:.2f}  cpu ms {ours_cpu:.1f} / {naive_cpu:.1f}")
    table = markdown_table(["observation", "ensemble", "threads", "updates/s", "naive loop updates/s", "speed-up",
                            "CPU ms/update", "naive CPU ms/update", "caching ms/frame"], rows)
    recipe = SACConfig()
    notes = (f"Critic updates per second of `tether.policies.sac.SACAgent` (batch {BATCH}, MLPs "
             f"{'x'.join(map(str, recipe.hidden_dims))} with LayerNorm, each critic step with its grasp-critic step, "
             f"an actor + temperature step every {recipe.critic_actor_ratio} critic steps (the recipe: once per "
             f"environment step at UTD {recipe.utd_ratio}), half the rows a person's (BC and grasp margin), "
             f"random-shift aug on images; a frozen encoder's rows run on cached pooled features with the shift "
             f"applied to the keypoints, and 'caching ms/frame' is what encoding one frame of every camera costs when "
             f"it enters the buffer), torch {torch.__version__} CPU; the learner node runs 1 thread. 'naive' replaces the "
             "stacked critic ensemble with separate MLP modules, timed in the same run in alternating rounds. "
             "CPU ms/update is process CPU time (all threads), which moves less with machine load than wall "
             f"time. OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')} (with 'passive', threads "
             "that wait sleep instead of spinning, which decides the 2-thread figure when another process holds "
             f"a core). `.venv/bin/python -m benchmarks.learner {' '.join(sys.argv[1:])}`")
    load = [round(x, 1) for x in (*load_before, *os.getloadavg())]
    notes += (f" Machine load average (1/5/15 min) before and after: {load[:3]} / {load[3:]}; on a shared CPU the "
              "absolute figures move with other work, the alternating agent/naive rounds keep the ratio fair.")
    write_results("learner", {"load_average": load, "results": results}, table, notes)


if __name__ == "__main__":
    main()
