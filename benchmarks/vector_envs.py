"""Env steps per second of the twin's vector envs against the number of worker processes.

State observations, random actions, automatic resets, tasks reach and pick_cube, rig twin_panda.
Each setup is `tether.sim2real.vector.make_vector_env`: one env in this process (SyncVectorEnv)
and 1, 2, ... workers (AsyncVectorEnv, one env per worker). Setups are timed in alternating
rounds and each keeps its median round, so the ratio against one worker, measured in the same
process, is fair on a shared machine; the absolute figures move with the machine's other work.

    .venv/bin/python -m benchmarks.vector_envs [--steps 1000] [--rounds 3] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import tether  # noqa: F401  (first: selects headless GL before mujoco is imported)
from benchmarks.report import markdown_table, write_results
from tether.sim2real.vector import env_seeds, make_vector_env

TASKS = ("reach", "pick_cube")


def env_steps_per_second(envs, steps: int, seed: int) -> float:
    """Env steps (over all envs) per second for about `steps` env steps."""
    rng = np.random.default_rng(seed)
    envs.reset(seed=env_seeds(seed, envs.num_envs))
    envs.step(envs.action_space.sample())  # warm-up
    rounds = max(1, steps // envs.num_envs)
    actions = rng.uniform(-1, 1, (rounds, *envs.action_space.shape)).astype(np.float32)
    start = time.perf_counter()
    for action in actions:
        envs.step(action)
    return rounds * envs.num_envs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="Env steps per setup and round.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=list(range(1, (os.cpu_count() or 1) + 1)))
    args = parser.parse_args()

    load_before = os.getloadavg()
    setups = {(task, "in process", 1): make_vector_env(task, "twin_panda", 1) for task in TASKS}
    for task in TASKS:
        for workers in args.workers:
            setups[(task, "workers", workers)] = make_vector_env(task, "twin_panda", workers, asynchronous=True)
    rates: dict[tuple, list[float]] = {key: [] for key in setups}
    for round_index in range(args.rounds):
        for key, envs in setups.items():
            rates[key].append(env_steps_per_second(envs, args.steps, seed=round_index))
    for envs in setups.values():
        envs.close()
    load_after = os.getloadavg()

    rows, results = [], []
    for (task, kind, workers), samples in rates.items():
        rate = float(np.median(samples))
        one = float(np.median(rates[(task, "workers", args.workers[0])]))
        label = "1 env, in process" if kind == "in process" else f"{workers} worker{'s' * (workers > 1)}"
        rows.append([task, label, rate, f"{rate / one:.2f}x", rate / 10.0])
        results.append({"task": task, "setup": kind, "envs": workers, "env_steps_per_s": rate, "rounds": samples,
                        "vs_one_worker": rate / one})
        print(f"{task} {label}: {rate:,.0f} env steps/s ({rate / one:.2f}x one worker)")
    table = markdown_table(["task", "setup", "env steps/s", f"vs {args.workers[0]} worker", "x real time (10 Hz)"], rows)
    notes = (
        f"`.venv/bin/python -m benchmarks.vector_envs --steps {args.steps} --rounds {args.rounds} --workers "
        f"{' '.join(map(str, args.workers))}`: gymnasium vector envs of the twin (state observations, random "
        "actions, same-step autoreset), one env per worker process (forkserver), rig twin_panda at 10 Hz control and "
        f"500 Hz physics; median of {args.rounds} alternating rounds of ~{args.steps} env steps. "
        f"{os.cpu_count()}-core machine shared with other jobs: load average (1/5/15 min) before "
        f"{[round(x, 1) for x in load_before]}, after {[round(x, 1) for x in load_after]}."
    )
    write_results("vector_envs", {"steps": args.steps, "rounds": args.rounds, "workers": args.workers,
                                  "load_before": load_before, "load_after": load_after, "results": results},
                  table, notes)


if __name__ == "__main__":
    main()
