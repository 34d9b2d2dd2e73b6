"""Zero-shot in the lab: trained run folders deployed on franky-sim with reality gaps switched on, per condition.

Each (run, condition) is one `python -m benchmarks.lab --policy RUN --gap ...` in a subprocess (the lab
re-executes itself without realtime scheduling), writing its figures to OUT/<condition>/<run>.json; a
stopped benchmark resumes where it stopped. A condition is `none`, `all` (every named gap at once) or
one gap's name (that gap alone), so the table shows which gaps a policy survives. Success per run is
the lab's truth (reach: the reach node's, TCP within 2 cm; pick_cube: the judge's, cube 10 cm up), set
beside the run's own twin success; figures over runs are the IQM with a 95% stratified-bootstrap
interval (rliable).

    .venv/bin/python -m benchmarks.lab.zero_shot --runs runs/reach_twin/none_s* --task reach --episodes 20 \\
        --condition all --condition none --condition payload --condition friction --condition latency
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.lab.gaps import GAP_SETTINGS
from benchmarks.report import markdown_table, write_results
from benchmarks.sample_efficiency import iqm_curve

REPO = Path(__file__).resolve().parents[2]
DEPLOY_SEED = 100_000  # cube placements / reach targets: never a training or evaluation seed of the twin


def gap_names(condition: str) -> list[str]:
    if condition == "none":
        return []
    if condition == "all":
        return sorted(GAP_SETTINGS)
    if condition not in GAP_SETTINGS:
        raise SystemExit(f"condition '{condition}': none, all or one of {', '.join(GAP_SETTINGS)}")
    return [condition]


def deploy(run: Path, condition: str, args: argparse.Namespace) -> dict:
    """One run under one condition (unless its figures are there): the lab's JSON."""
    result = args.out / condition / f"{run.name}.json"
    if not result.exists():
        result.parent.mkdir(parents=True, exist_ok=True)
        flags = [flag for name in gap_names(condition) for flag in ("--gap", name)]
        command = [sys.executable, "-m", "benchmarks.lab", "--policy", str(run), "--task", args.task, "--episodes",
                   str(args.episodes), "--seed", str(DEPLOY_SEED), "--out", str(args.out / condition / run.name),
                   "--json", str(result), *flags]
        print("$", " ".join(command[1:]), flush=True)
        log = args.out / "logs" / f"{condition}_{run.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as stream:
            code = subprocess.run(command, cwd=REPO, stdout=stream, stderr=subprocess.STDOUT).returncode
        if code != 0 or not result.exists():
            raise SystemExit(f"lab deploy of {run} under '{condition}' failed ({code}); see {log}")
    figures = json.loads(result.read_text())
    if figures["episodes"] != args.episodes:
        raise SystemExit(f"{result}: {figures['episodes']} of {args.episodes} episodes; delete it to rerun")
    return figures


def twin_success(run: Path) -> float:
    """The run's success in the twin it trained in: its evaluation over many episodes if it has one, else its
    last training evaluation."""
    evaluation = run / "eval.json"
    if evaluation.exists():
        return float(json.loads(evaluation.read_text())["success_rate"])
    return float(json.loads((run / "summary.json").read_text())["final_success_rate"])


def interval(values: list[float], reps: int) -> dict:
    point, ci = iqm_curve(np.array(values, float)[:, None], reps, seed=0)
    return {"iqm": float(point[0]), "ci": [float(ci[0, 0]), float(ci[1, 0])]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="trained run folders (one per seed)")
    parser.add_argument("--task", required=True, choices=["reach", "pick_cube"])
    parser.add_argument("--condition", action="append", default=[], help="none, all or a gap's name (repeatable)")
    parser.add_argument("--episodes", type=int, default=20, help="lab episodes per run and condition")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--name", default=None, help="results name (default lab_zero_shot_<task>)")
    parser.add_argument("--out", type=Path, default=Path("runs/lab_zero_shot"))
    args = parser.parse_args()
    conditions = args.condition or ["all"]
    twin = [twin_success(run) for run in args.runs]
    results: dict[str, dict] = {}
    for condition in conditions:
        per_run = [deploy(run, condition, args) for run in args.runs]
        results[condition] = {
            "gaps": gap_names(condition), "success": [r["success_rate"] for r in per_run],
            "real_time_factor": [r["real_time_factor"] for r in per_run],
            "tracking_mean_mm": [r["tracking_mean_mm"] for r in per_run],
            "aggregate": interval([r["success_rate"] for r in per_run], args.bootstrap),
        }
    twin_aggregate = interval(twin, args.bootstrap)

    def cell(a: dict) -> str:
        return f"{a['iqm']:.2f} [{a['ci'][0]:.2f}, {a['ci'][1]:.2f}]"

    rows = [[c, ", ".join(r["gaps"]) or "-", len(args.runs), " ".join(f"{s:.2f}" for s in r["success"]), cell(r["aggregate"]),
             f"{r['aggregate']['iqm'] - twin_aggregate['iqm']:+.2f}", f"{np.mean(r['tracking_mean_mm']):.1f}",
             f"{np.mean(r['real_time_factor']):.2f}"] for c, r in results.items()]
    table = markdown_table(["condition", "gaps on", "runs", "lab success per run", "lab success IQM [95% CI]",
                            "vs twin", "tracking mm", "real-time factor"], rows)
    table += f"\n\nTwin success of the same runs: {' '.join(f'{s:.2f}' for s in twin)}, IQM {cell(twin_aggregate)}."
    load = os.getloadavg()
    notes = (
        f"`.venv/bin/python -m benchmarks.lab.zero_shot --task {args.task} --episodes {args.episodes} "
        + " ".join(f"--condition {c}" for c in conditions) + f" --runs {' '.join(str(r) for r in args.runs)}` "
        f"(2-core machine, load average {load[0]:.1f} / {load[2]:.1f} over 1 / 15 min at the end). The lab: franky-sim's "
        "own FR3 behind tether's Franka backend, with a table and an ArUco-marked cube, its renders streamed as "
        "RealSense cameras (benchmarks/lab). Gap magnitudes: " + "; ".join(
            f"{name} {settings}" for name, settings in GAP_SETTINGS.items()) + ". "
        f"{args.episodes} episodes per run and condition, the same targets / cube placements (seed {DEPLOY_SEED}) "
        "for every run. 'vs twin' is the difference of IQMs against the runs' twin success. Real-time factor: "
        "franky-sim's simulated over wall time while deploying (below 1 the arm falls behind the control clock: "
        "a slower robot).")
    write_results(args.name or f"lab_zero_shot_{args.task}",
                  {"settings": vars(args) | {"out": str(args.out), "runs": [str(r) for r in args.runs]},
                   "twin_success": twin, "twin_aggregate": twin_aggregate, "conditions": results}, table, notes)
    print(table)


if __name__ == "__main__":
    main()
