"""Saving and loading a learner's replay buffer: batched commits vs one commit per episode.

A HIL learner's online buffer holds hundreds of short runs (the actor's episodes, cut at every
takeover). `save_replay` writes them with `EpisodeWriter.write_episodes` (one write per array
per 8k frames) and `load_replay` reads them with `EpisodeStore.iter_episodes`; the baseline
writes each run with `write_episode` and reads each with `episode`, as before, timed in the
same process on the same buffer.

    .venv/bin/python -m benchmarks.replay_checkpoint [--runs 674] [--run-length 7]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from benchmarks.report import markdown_table, write_results
from tether.datasets.replay import ReplayBuffer
from tether.datasets.replay_io import load_replay, save_replay
from tether.datasets.store import EpisodeStore, EpisodeWriter
from tether.spaces import GRIPPER, JOINTS, TCP_POSE, TCP_VEL
from tether.types import Transition

ACTION_DIM = 7


def demo_like_buffer(runs: int, run_length: int, seed: int = 0) -> ReplayBuffer:
    """State observations of the demo's size; every run ends truncated (a takeover or time limit)."""
    dims = {TCP_POSE: 7, TCP_VEL: 6, GRIPPER: 1, JOINTS: 7, "state/cube_pos": 3, "state/cube_quat": 4}
    space = gym.spaces.Dict({k: gym.spaces.Box(-np.inf, np.inf, (d,), np.float32) for k, d in dims.items()})
    buffer = ReplayBuffer(space, ACTION_DIM, runs * (run_length + 1))
    rng = np.random.default_rng(seed)

    def obs() -> dict[str, np.ndarray]:
        return {k: rng.standard_normal(d).astype(np.float32) for k, d in dims.items()}

    for _ in range(runs):
        current = obs()
        for t in range(run_length):
            following = obs()
            buffer.add(Transition(
                obs=current, action=rng.uniform(-1, 1, ACTION_DIM).astype(np.float32), reward=0.0,
                next_obs=following, terminated=False, truncated=t == run_length - 1, intervened=bool(t % 2),
            ))
            current = following
    return buffer


def timed(work) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=674, help="runs in the buffer (the demo's online buffer had 674)")
    parser.add_argument("--run-length", type=int, default=7)
    args = parser.parse_args()
    buffer = demo_like_buffer(args.runs, args.run_length)
    scratch = Path(tempfile.mkdtemp(prefix="tether-replay-bench-"))
    try:
        save_s = timed(lambda: save_replay(buffer, scratch / "batched.zarr", source="hil", fps=10))

        def save_per_episode() -> None:
            with EpisodeWriter.create(scratch / "per_episode.zarr", buffer.observation_space, ACTION_DIM, 10) as writer:
                for episode in buffer.episodes():
                    writer.write_episode(episode, source="hil")

        save_baseline_s = timed(save_per_episode)
        load_s = timed(lambda: load_replay(scratch / "batched.zarr"))

        def load_per_episode() -> None:
            store = EpisodeStore(scratch / "per_episode.zarr")
            for index in range(store.n_episodes):
                store.episode(index)

        load_baseline_s = timed(load_per_episode)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    transitions = args.runs * args.run_length
    results = {
        "runs": args.runs, "transitions": transitions,
        "save_s": save_s, "save_per_episode_s": save_baseline_s, "save_speedup": save_baseline_s / save_s,
        "load_s": load_s, "load_per_episode_s": load_baseline_s, "load_speedup": load_baseline_s / load_s,
    }
    table = markdown_table(
        ["operation", "batched (s)", "per episode (s)", "speed-up"],
        [["save_replay", f"{save_s:.2f}", f"{save_baseline_s:.2f}", f"{save_baseline_s / save_s:.0f}x"],
         ["load_replay (reads only for the baseline)", f"{load_s:.2f}", f"{load_baseline_s:.2f}",
          f"{load_baseline_s / load_s:.0f}x"]],
    )
    notes = (f"`python -m benchmarks.replay_checkpoint --runs {args.runs} --run-length {args.run_length}`: "
             f"{transitions} state transitions in {args.runs} runs, as a HIL learner's online buffer.")
    write_results("replay_checkpoint", results, table, notes)
    print(table)


if __name__ == "__main__":
    main()
