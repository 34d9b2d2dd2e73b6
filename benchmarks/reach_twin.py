"""Reach in the twin of the Franka rig: `tether train sim --task reach` at its defaults, per seed, and each
final policy's success over many twin episodes (the first half of issue 19's reach criterion; franky-sim
is benchmarks/sim2real.py's).

Stages are resumable: a seed whose run folder has its summary (or its evaluation) is not run again.

    .venv/bin/python -m benchmarks.reach_twin           # the protocol: 5 seeds, no DR, 50 episodes
    .venv/bin/python -m benchmarks.reach_twin --randomize light --seeds 1 --out runs/reach_twin_light
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from benchmarks.diffusion_success import _given_flags
from benchmarks.report import markdown_table, write_results
from benchmarks.sample_efficiency import iqm_curve
from benchmarks.sim2real import franka_copy, tether
from tether.cli.train_sim import SUMMARY_JSON, write_twin_rig
from tether.sim2real.profiles import profile_ranges

PROTOCOL = dict(seeds=5, episodes=50, randomize="none")
EVAL_SEED = 500_000  # first target of the evaluation episodes; the training evaluations use other seeds
EVAL_JSON = "eval.json"


def run_seed(out: Path, rig: Path, seed: int, args: argparse.Namespace) -> dict:
    """Train one seed (unless done), evaluate its final policy on the nominal twin (unless done); its figures."""
    run = out / f"{args.randomize}_s{seed}"
    if not (run / SUMMARY_JSON).exists():
        tether(["train", "sim", "--task", "reach", "--rig", str(rig), "--randomize", args.randomize,
                "--envs", "2", "--seed", str(seed), "--out", str(run), "--force"], out / "logs" / f"{run.name}.log")
    if not (run / EVAL_JSON).exists():
        tether(["eval", "--policy", str(run / "checkpoint"), "--rig", str(rig), "--episodes", str(args.episodes),
                "--seed", str(EVAL_SEED), "--json", str(run / EVAL_JSON), "--force"],
               out / "logs" / f"eval_{run.name}.log")
    summary, evaluation = (json.loads((run / name).read_text()) for name in (SUMMARY_JSON, EVAL_JSON))
    first = next((p["env_steps"] for p in summary["success_over_time"] if p["success_rate"] >= 1.0), None)
    return {"seed": seed, "success": evaluation["success_rate"], "mean_length": evaluation["mean_length"],
            "env_steps": summary["env_steps"], "first_perfect_eval_steps": first,
            "train_wall_s": summary["wall_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=PROTOCOL["seeds"])
    parser.add_argument("--episodes", type=int, default=PROTOCOL["episodes"], help="twin episodes per final policy")
    parser.add_argument("--randomize", default=PROTOCOL["randomize"], choices=["none", "light", "heavy"],
                        help="`train sim` profile; evaluation is always on the nominal twin")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--out", type=Path, default=Path("runs/reach_twin"))
    args = parser.parse_args()
    franka = franka_copy("127.0.0.1")  # the twin keeps no address
    rig = write_twin_rig(franka, profile_ranges("none", franka), args.out / "rig")
    runs = [run_seed(args.out, rig, seed, args) for seed in range(args.seeds)]
    point, interval = iqm_curve(np.array([[r["success"]] for r in runs]), args.bootstrap, seed=0)
    aggregate = {"iqm": float(point[0]), "ci": [float(interval[0, 0]), float(interval[1, 0])]}

    reduced = [f"{k} {getattr(args, k)} (protocol {v})" for k, v in PROTOCOL.items() if getattr(args, k) != v]
    label = "Not the protocol: " + "; ".join(reduced) + ". " if reduced else "The protocol. "
    command = "`.venv/bin/python -m benchmarks.reach_twin " + " ".join(_given_flags(parser, args)) + "`"
    load = os.getloadavg()
    notes = (
        f"{label}{command} (2-core machine shared with other jobs; load average {load[0]:.1f} / {load[2]:.1f} over "
        "1 / 15 min at the end). Rig: franka_realsense's twin with task reach (workspace 0.4 x 0.5 x 0.48 m, "
        "targets 5 cm inside it, 1.5 cm per step at most, success within 2 cm). Training: `tether train sim "
        f"--task reach --randomize {args.randomize} --envs 2` at its defaults (SAC with the learner core's recipe, "
        "10 critics, UTD 4; actions [dx dy dz] without a gripper; goal-relative features in the encoder; shaped "
        "reward, 10 scripted demos). Success: the final deterministic policy over "
        f"{args.episodes} twin episodes (targets from seed {EVAL_SEED}), on the nominal twin. 'first 1.0 at' is the "
        "first training evaluation (10 episodes, every 1,000 steps) that scored 1.0. IQM over seeds with its 95% "
        f"stratified-bootstrap interval (rliable, {args.bootstrap} replicates)."
    )
    rows = [[r["seed"], f"{r['success']:.2f}", f"{r['mean_length']:.1f}", r["first_perfect_eval_steps"] or "-",
             r["env_steps"], f"{r['train_wall_s'] / 60:.1f}"] for r in runs]
    table = markdown_table(["seed", "twin success", "mean length", "first 1.0 at (steps)", "env steps", "train min"],
                           rows)
    table += f"\n\nTwin success IQM {aggregate['iqm']:.3f} [{aggregate['ci'][0]:.3f}, {aggregate['ci'][1]:.3f}]."
    name = "reach_twin" if args.randomize == "none" else f"reach_twin_{args.randomize}"
    write_results(name, {"settings": vars(args) | {"out": str(args.out)}, "reduced": reduced, "runs": runs,
                         "aggregate": aggregate}, table, notes)
    print(table)


if __name__ == "__main__":
    main()
