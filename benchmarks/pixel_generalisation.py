"""Pixel policies on the twin they trained in and on a shifted twin: does success hang on one look?

Every run folder of `benchmarks/sample_efficiency.py --preset pixels_demo` (one per encoder condition and
seed) is loaded with `load_policy` and evaluated, deterministic and without interventions, on the same
episode seeds (the same cube placements) in two twins:

- training: the rig it trained on;
- shifted: the same rig with a blue-grey table, an orange cube, a warm top light, a dimmer headlight and
  every world-mounted camera 2 cm to the side (`tether.cli.train.shifted_twin`, the variant the shipped
  encoder's linear probe is also reported on, docs/encoder.md).

Per encoder condition: IQM success over seeds with 95% stratified-bootstrap intervals (rliable) in each
twin, and shifted / training.

    .venv/bin/python -m benchmarks.pixel_generalisation --runs-dir runs/sample_efficiency [--episodes 50]
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import shlex
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from benchmarks.report import markdown_table, write_results
from benchmarks.sample_efficiency import iqm_curve
from tether.cli import train as twins
from tether.config import load_rig
from tether.policies.registry import load_policy
from tether.policies.sac_loop import evaluate

EPISODE_SEED = 3_000_000
"""Evaluation episodes use seeds from here in both twins, apart from those of training and its evaluations."""
RUN_NAME = re.compile(r"(?P<condition>.+)_s(?P<seed>\d+)$")


def evaluate_run(run: dict) -> dict[str, float]:
    """Success of one run's final policy in the training twin and in the shifted twin."""
    torch.set_num_threads(1)
    policy = load_policy(run["dir"], deterministic=True)
    rig = load_rig(run["rig"])
    envs = {"training": twins.make_twin("pick_cube", "all", rig), "shifted": twins.shifted_twin(rig)}
    success = {}
    for name, env in envs.items():
        success[name] = evaluate(policy.act, env, run["episodes"], seed=EPISODE_SEED).success_rate
        env.close()
    policy.close()
    return success


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/sample_efficiency"))
    parser.add_argument("--pattern", default="*_pixels_*", help="glob of the run folders to evaluate")
    parser.add_argument("--rig", default="twin_panda_demo", help="the rig the runs trained on")
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes per run and twin")
    parser.add_argument("--jobs", type=int, default=1, help="runs evaluated at once, each in its own process")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates")
    args = parser.parse_args()

    dirs = sorted(d for d in args.runs_dir.glob(args.pattern) if RUN_NAME.match(d.name))
    if not dirs:
        sys.exit(f"--runs-dir {args.runs_dir}: no run folders match '{args.pattern}' (name ending in _s<seed>)")
    runs = [dict(dir=d, rig=args.rig, episodes=args.episodes) for d in dirs]
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        outcomes = list(pool.map(evaluate_run, runs))

    by_condition: dict[str, list[tuple[int, dict[str, float]]]] = defaultdict(list)
    for d, success in zip(dirs, outcomes):
        match = RUN_NAME.match(d.name)
        by_condition[match["condition"]].append((int(match["seed"]), success))
        print(d.name, success)
    conditions, rows = {}, []
    for condition, seeds in by_condition.items():
        scores = np.array([[s["training"], s["shifted"]] for _, s in sorted(seeds)])
        iqm, interval = iqm_curve(scores, args.bootstrap, seed=0)
        conditions[condition] = {"seeds": [seed for seed, _ in sorted(seeds)], "scores": scores.tolist(),
                                 "iqm": iqm.tolist(), "ci_low": interval[0].tolist(),
                                 "ci_high": interval[1].tolist()}
        rows.append([condition, len(seeds), *[f"{iqm[i]:.2f} [{interval[0][i]:.2f}, {interval[1][i]:.2f}]"
                                              for i in range(2)],
                     f"{iqm[1] / iqm[0]:.2f}" if iqm[0] > 0 else "n/a",
                     " / ".join(f"{a:.2f}->{b:.2f}" for a, b in scores)])
    table = markdown_table(["run condition", "seeds", "training twin IQM [95% CI]", "shifted twin IQM [95% CI]",
                            "shifted / training", "per seed (training -> shifted)"], rows)
    notes = (f"Each run's final policy, deterministic, no interventions, {args.episodes} episodes per twin on "
             f"the same episode seeds; rig {args.rig}. Shifted twin: table RGB {twins.SHIFTED_TABLE_RGB}, cube "
             f"{twins.SHIFTED_CUBE_RGB}, top light {twins.SHIFTED_TOP_LIGHT}, headlight {twins.SHIFTED_HEADLIGHT}, "
             f"world cameras {twins.SHIFTED_CAMERA_M * 100:.0f} cm in +y (`tether.cli.train.shifted_twin`). "
             "IQM over seeds, 95% stratified-bootstrap intervals (rliable, "
             f"{args.bootstrap} replicates). `.venv/bin/python -m benchmarks.pixel_generalisation "
             f"{shlex.join(sys.argv[1:])}`")
    write_results("pixel_generalisation", {"rig": args.rig, "episodes": args.episodes, "conditions": conditions},
                  table, notes)
    print(table)


if __name__ == "__main__":
    main()
