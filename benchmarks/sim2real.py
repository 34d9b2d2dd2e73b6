"""Zero-shot sim-to-real on franky-sim: what domain randomisation and system identification each buy.

The lab (benchmarks/lab: franky-sim's own MuJoCo FR3 and Cartesian impedance controller, reached only
through the libfranka protocol by tether's Franka backend, with a table and a cube) stands in for the
real robot, with the reality gaps named by --gap switched on (payload, friction, latency, ...). The pipeline, each
stage through its command line in a subprocess, each writing into --out and skipped when its
output is there (a stopped run resumes where it stopped; stages are found by name, not by settings,
so give a new --out when changing --steps, --episodes, --excite-seconds or --dr-profile):

  1. `tether sim excite` on a franka_realsense copy pointed at franky-sim: a fitting log and a
     held-out log (another plan seed);
  2. `tether sim sysid --joint-weight 0` on the fitting log: the nominal twin of that rig with
     identified `twin_dynamics` (held-out segments before/after in its report);
  3. `tether eval --gap` of the nominal and the identified twin on the held-out log;
  4. `tether train sim --task reach` for each condition and seed, same step budget:
     no DR on the nominal twin, DR on the nominal twin, DR on the identified twin;
  5. `tether deploy` of each checkpoint on franky-sim for --episodes episodes, the same reach
     targets for every checkpoint: success, final TCP-to-target distance, arm tracking error.

Per condition the figures are aggregated over seeds as the interquartile mean (IQM) with a 95%
stratified-bootstrap interval (rliable), and set against the no-DR baseline of the same run.

    .venv/bin/python -m benchmarks.sim2real                       # the protocol: 3 seeds x 20k steps x 10 episodes
    .venv/bin/python -m benchmarks.sim2real --seeds 1             # one seed (labelled REDUCED); rerun with
                                                                  # --seeds 3 and the same --out to add seeds
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import yaml

from benchmarks.diffusion_success import _given_flags
from benchmarks.report import markdown_table, write_results
from benchmarks.sample_efficiency import iqm_curve
from tether.cli.train_sim import SUMMARY_JSON, write_twin_rig
from tether.config import RigConfig
from benchmarks.lab.gaps import GAP_SETTINGS, Gaps
from benchmarks.lab.judge import judging
from benchmarks.lab.lab import Lab
from tether.robot_ws.franky_server import NO_REALTIME, sim_rig
from tether.sim2real.profiles import profile_ranges

PROTOCOL = dict(seeds=3, steps=20_000, episodes=10, dr_profile="light", excite_seconds=60.0)
CONDITIONS = ("no DR", "DR", "DR + sysid")
DEPLOY_SEED = 100_000  # reach targets on franky-sim; never a training seed
FIT_PLAN_SEED, HELD_OUT_PLAN_SEED = 0, 1
def tether(args: list[str], log: Path, timeout_s: float | None = None, *, franka: bool = False) -> None:
    """Run `tether ARGS` in a subprocess, its output into `log`; a failure ends the benchmark with the log's tail.
    `franka`: the command drives the Franka backend, so it runs without realtime scheduling (NO_REALTIME)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"$ tether {' '.join(args)}", flush=True)
    command = (NO_REALTIME if franka else []) + [sys.executable, "-m", "tether.cli", *args]
    with log.open("w") as stream:
        code = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT, timeout=timeout_s).returncode
    if code != 0:
        raise SystemExit(f"tether {args[0]} failed ({code}); {log}:\n" + "".join(log.read_text().splitlines(True)[-15:]))
    print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)


def write_rig(rig: RigConfig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(rig.model_dump(mode="json", exclude_none=True), sort_keys=False))
    return path


def franka_copy(address: str) -> RigConfig:
    """franka_realsense pointed at a franky-sim address, cameras off (the policies see state), task reach."""
    rig = sim_rig(address)
    return rig.model_copy(update={"cameras": [], "task": rig.task.model_copy(update={"name": "reach"})})


@contextmanager
def franky_rig(out: Path, gaps: list[str]) -> Iterator[Path]:
    """The lab (franky-sim with its table and cube, the named reality gaps on, no cameras) and its Franka rig
    with task reach, for as long as the stages that talk to the "real" robot run (it takes a core while it runs,
    so not longer). The lab's judge parks the cube out of the workspace at every reset."""
    with Lab(Gaps.named(gaps), task="reach", cameras=False, folder=out / "lab") as lab, judging(lab, lab.rig):
        yield write_rig(lab.rig, out / "rigs" / "franka_sim.yaml")


def excite(out: Path, rig: Path, name: str, seed: int, seconds: float) -> Path:
    """An excitation log recorded from franky-sim (written under a temporary name, renamed when whole)."""
    store = out / f"{name}.zarr"
    if not store.exists():
        partial = out / f"{name}.partial.zarr"
        shutil.rmtree(partial, ignore_errors=True)
        tether(["sim", "excite", "--rig", str(rig), "--out", str(partial), "--seconds", str(seconds), "--seed", str(seed)],
               out / "logs" / f"{name}.log", franka=True)
        partial.rename(store)
    return store


def identify(out: Path, fit_log: Path, held_log: Path, evals: int) -> tuple[Path, Path, dict]:
    """The nominal twin of the Franka rig, its identified copy, the sysid report and the gap of both."""
    franka = franka_copy("127.0.0.1")  # the twin keeps no address
    nominal = write_twin_rig(franka, profile_ranges("none", franka), out / "rigs" / "nominal")
    identified, report = out / "rigs" / "identified.yaml", out / "sysid.json"
    if not report.exists():
        tether(["sim", "sysid", "--log", str(fit_log), "--rig", str(nominal), "--out", str(identified),
                "--joint-weight", "0", "--max-evals", str(evals), "--json", str(report)], out / "logs" / "sysid.log")
    gaps = {}
    for name, rig in (("nominal", nominal), ("identified", identified)):
        path = out / f"gap_{name}.json"
        if not path.exists():
            tether(["eval", "--gap", "--log", str(held_log), "--rig", str(rig), "--json", str(path)],
                   out / "logs" / f"gap_{name}.log")
        gaps[name] = json.loads(path.read_text())["overall"]
    return nominal, identified, {"sysid": json.loads(report.read_text()), "gap_held_out_log": gaps}


def train(out: Path, condition: str, rig: Path, seed: int, args: argparse.Namespace) -> Path:
    folder = out / "train" / f"{slug(condition)}_s{seed}"
    if not (folder / SUMMARY_JSON).exists():
        shutil.rmtree(folder, ignore_errors=True)  # `train sim` does not resume
        profile = "none" if condition == "no DR" else args.dr_profile
        tether(["train", "sim", "--task", "reach", "--rig", str(rig), "--randomize", profile, "--steps", str(args.steps),
                "--envs", str(args.envs), "--seed", str(seed), "--out", str(folder)], out / "logs" / f"{folder.name}.log")
    return folder


def deployed(out: Path, run: Path) -> Path:
    return out / "deploy" / f"{run.name}.json"


def deploy(out: Path, run: Path, franka: Path, episodes: int) -> None:
    result = deployed(out, run)
    if not result.exists():
        store = result.with_suffix(".zarr")
        shutil.rmtree(store, ignore_errors=True)  # an interrupted deployment starts over
        tether(["deploy", "--policy", str(run / "checkpoint"), "--rig", str(franka), "--episodes", str(episodes),
                "--seed", str(DEPLOY_SEED), "--out", str(store), "--json", str(result)],
               out / "logs" / f"deploy_{run.name}.log", timeout_s=600 + 120 * episodes, franka=True)
        ran = json.loads(result.read_text())["episodes"]
        if ran != episodes:  # stopped early (deploy writes what it got): not a result, and not a done stage
            result.rename(result.with_suffix(".stopped.json"))
            raise SystemExit(f"deploy of {run.name}: {ran} of {episodes} episodes; see {out / 'logs'}")


def slug(condition: str) -> str:
    return {"no DR": "nodr", "DR": "dr", "DR + sysid": "dr_sysid"}[condition]


def seed_figures(run: Path, deployment: dict) -> dict:
    """One seed's figures: on franky-sim, and the twin's own last evaluation for comparison."""
    summary = json.loads((run / SUMMARY_JSON).read_text())
    return {"seed": summary["seed"], "twin_success": summary["final_success_rate"],
            "curriculum_scale": summary["curriculum"]["scale"],
            "success": deployment["success_rate"],
            "final_distance_mm": 1000 * float(np.mean(deployment["final_target_distance_m"])),
            "tracking_mm": deployment["tracking_mean_mm"], "mean_length": deployment["mean_length"],
            "outcomes": deployment["outcomes"], "train_wall_s": summary["wall_s"]}


METRICS = ("success", "final_distance_mm", "tracking_mm", "twin_success")


def aggregate(runs: list[dict], reps: int) -> dict:
    """IQM over seeds with its 95% bootstrap interval, per metric."""
    scores = np.array([[run[m] for m in METRICS] for run in runs], float)
    point, interval = iqm_curve(scores, reps, seed=0)
    return {m: {"iqm": float(point[i]), "ci": [float(interval[0, i]), float(interval[1, i])]}
            for i, m in enumerate(METRICS)}


def tables(conditions: dict[str, dict], identification: dict) -> str:
    base = conditions["no DR"]["aggregate"]

    def cell(c: dict, metric: str, digits: int) -> str:
        a = c["aggregate"][metric]
        return f"{a['iqm']:.{digits}f} [{a['ci'][0]:.{digits}f}, {a['ci'][1]:.{digits}f}]"

    def versus(c: dict, metric: str, ratio: bool) -> str:
        value, reference = c["aggregate"][metric]["iqm"], base[metric]["iqm"]
        if ratio:
            return f"x{value / reference:.2f}" if reference else "-"
        return f"{value - reference:+.2f}"

    rows = [[name, c["twin"], c["profile"], len(c["runs"]),
             "-" if c["profile"] == "none" else " ".join(f"{r['curriculum_scale']:.2f}" for r in c["runs"]),
             cell(c, "twin_success", 2), cell(c, "success", 2),
             versus(c, "success", False), cell(c, "final_distance_mm", 1), versus(c, "final_distance_mm", True),
             cell(c, "tracking_mm", 1), versus(c, "tracking_mm", True)] for name, c in conditions.items()]
    zero_shot = markdown_table(
        ["condition", "twin trained in", "DR", "seeds", "DR scale reached", "twin success",
         "franky-sim success IQM [95% CI]",
         "vs no DR", "final distance mm", "vs no DR", "tracking error mm", "vs no DR"], rows)
    sysid, gaps = identification["sysid"], identification["gap_held_out_log"]
    before, after = sysid["before"], sysid["after"]
    gap_rows = [
        ["sysid held-out segments, TCP RMS (mm)", f"{1000 * before['held_out']['tcp_rms_m']:.2f}",
         f"{1000 * after['held_out']['tcp_rms_m']:.2f}"],
        ["`eval --gap` held-out log, TCP RMS (mm)", f"{1000 * gaps['nominal']['tcp_rms_m']:.2f}",
         f"{1000 * gaps['identified']['tcp_rms_m']:.2f}"],
        ["`eval --gap` held-out log, final TCP error (mm)", f"{1000 * gaps['nominal']['tcp_final_mean_m']:.2f}",
         f"{1000 * gaps['identified']['tcp_final_mean_m']:.2f}"],
    ]
    gap = markdown_table(["twin vs franky-sim", "nominal twin", "identified twin"], gap_rows)
    return zero_shot + "\n\n" + gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=PROTOCOL["seeds"])
    parser.add_argument("--steps", type=int, default=PROTOCOL["steps"], help="`train sim` env steps per run")
    parser.add_argument("--episodes", type=int, default=PROTOCOL["episodes"], help="deployment episodes per checkpoint")
    parser.add_argument("--dr-profile", default=PROTOCOL["dr_profile"], choices=["light", "heavy"])
    parser.add_argument("--excite-seconds", type=float, default=PROTOCOL["excite_seconds"])
    parser.add_argument("--sysid-evals", type=int, default=150, help="replays the identification may spend")
    parser.add_argument("--envs", type=int, default=2, help="`train sim` twin workers")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--gap", action="append", default=[], choices=sorted(GAP_SETTINGS),
                        help="a lab reality gap on during excitation and deployment (repeatable; give a new --out)")
    parser.add_argument("--out", type=Path, default=Path("runs/sim2real"))
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    if not all((out / f"{n}.zarr").exists() for n in ("excite_fit", "excite_held_out")):
        with franky_rig(out, args.gap) as franka:
            excite(out, franka, "excite_fit", FIT_PLAN_SEED, args.excite_seconds)
            excite(out, franka, "excite_held_out", HELD_OUT_PLAN_SEED, args.excite_seconds)
    fit, held = out / "excite_fit.zarr", out / "excite_held_out.zarr"
    nominal, identified, identification = identify(out, fit, held, args.sysid_evals)

    twins = {"no DR": nominal, "DR": nominal, "DR + sysid": identified}
    runs = {c: [train(out, c, twins[c], seed, args) for seed in range(args.seeds)] for c in CONDITIONS}
    pending = [run for c in CONDITIONS for run in runs[c] if not deployed(out, run).exists()]
    if pending:
        with franky_rig(out, args.gap) as franka:
            for run in pending:
                deploy(out, run, franka, args.episodes)
    conditions = {}
    for c in CONDITIONS:
        per_seed = [seed_figures(run, json.loads(deployed(out, run).read_text())) for run in runs[c]]
        conditions[c] = {"twin": "identified" if c == "DR + sysid" else "nominal",
                         "profile": "none" if c == "no DR" else args.dr_profile,
                         "runs": per_seed, "aggregate": aggregate(per_seed, args.bootstrap)}

    reduced = [f"{k.replace('_', '-')} {getattr(args, k)} (protocol {v})" for k, v in PROTOCOL.items()
               if getattr(args, k) != v]
    label = "REDUCED run, not the issue's protocol: " + "; ".join(reduced) + ". " if reduced else "Full protocol. "
    command = "`.venv/bin/python -m benchmarks.sim2real " + " ".join(_given_flags(parser, args)) + "`"
    table = tables(conditions, identification)
    load = os.getloadavg()
    notes = (
        f"{label}{command} (on a 2-core machine shared with other jobs; load average {load[0]:.1f} / {load[2]:.1f} over 1 / 15 min at the "
        f"end). Lab gaps on: {', '.join(args.gap) or 'none'}. The \"real\" robot is franky-sim 1.0.4 (MuJoCo FR3, Cartesian "
        "impedance at 2000 N/m) behind the Franka backend, on franka_realsense with the arm pointed at it "
        "(`realtime: false`, relative dynamics factor 0.4 for homing, cameras off, task reach); the commands that "
        "drive it run without CAP_SYS_NICE, so libfranka cannot put them above franky-sim in SCHED_FIFO (see "
        "NO_REALTIME in tether.robot_ws.franky_server). Under load franky-sim still falls behind real time and the actor holds on "
        "its stale states: deployments slow down, figures stay honest. Excitation: "
        f"{args.excite_seconds:.0f} s from franky-sim for fitting (plan seed {FIT_PLAN_SEED}) and another for the gap "
        f"(plan seed {HELD_OUT_PLAN_SEED}); identification `tether sim sysid --joint-weight 0 --max-evals "
        f"{args.sysid_evals}` of the nominal twin of that rig. Training: `tether train sim --task reach --steps "
        f"{args.steps} --envs {args.envs}` per seed (SAC, shaped reward, 10 scripted demos; curriculum with DR), "
        f"'twin success' its last evaluation in the twin it trained in (full ranges), 'DR scale reached' the "
        "curriculum's scale at the end, per seed (1: the profile's ranges). Deployment: `tether deploy` of each "
        f"checkpoint, {args.episodes} episodes with the same reach targets (seed {DEPLOY_SEED}); success is the "
        "reach node's (TCP within 2 cm), final distance the mean over episodes of the last TCP-to-target distance, "
        "tracking error the arm node's mean distance from the measured TCP to the previous tick's target. IQM over "
        f"seeds with 95% stratified-bootstrap intervals (rliable, {args.bootstrap} replicates; with one seed a "
        "point); 'vs no DR' is the difference (success) or the ratio (mm) of IQMs against the no-DR baseline "
        "of this run.")
    write_results("sim2real", {"settings": vars(args) | {"out": str(out)}, "reduced": reduced,
                               "identification": identification, "conditions": conditions}, table, notes)
    print(table)


if __name__ == "__main__":
    main()
