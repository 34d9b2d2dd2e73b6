"""`python -m benchmarks.lab`: deploy a policy against the lab, or serve the lab for someone else's commands.

    python -m benchmarks.lab --policy runs/x --episodes 20 --gap payload --gap latency --task pick_cube --json out.json
    python -m benchmarks.lab --serve --gap friction       # prints a rig file; Ctrl-C stops

Deploying runs tether's own `run_deploy` in this process, next to the lab's cameras (their software
devices cannot be opened from another process) and judge. The process first gives up realtime
scheduling (re-executing itself under NO_REALTIME when it holds CAP_SYS_NICE): libfranka would
otherwise put its control thread above franky-sim and the renders on two cores.

`--serve` runs the server and the judge and writes a rig without cameras: `tether deploy --rig
THAT_FILE` from another shell (under NO_REALTIME) drives the lab's arm and gets its cube resets and
pick_cube success, but a policy that needs the cameras must run through `--policy`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from benchmarks.lab.gaps import GAP_SETTINGS, Gaps  # noqa: E402
from benchmarks.lab.judge import judging  # noqa: E402
from benchmarks.lab.lab import Lab  # noqa: E402
from tether.robot_ws.franky_server import NO_REALTIME  # noqa: E402

CAP_SYS_NICE = 23


def may_raise_priority() -> bool:
    """Whether this process holds CAP_SYS_NICE (libfranka then makes its threads SCHED_FIFO)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_NICE & 1)
    return False


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lab", description=__doc__.split("\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--policy", type=Path, help="checkpoint or run folder to deploy")
    what.add_argument("--serve", action="store_true", help="run the lab until Ctrl-C and print its rig file")
    parser.add_argument("--gap", action="append", default=[], choices=sorted(GAP_SETTINGS), help="switch a gap on (repeatable)")
    parser.add_argument("--task", default="pick_cube", choices=["pick_cube", "reach"])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="cube placements, calibration-error direction, reach targets")
    parser.add_argument("--fps", type=int, default=15, choices=[15, 30], help="camera rate (a RealSense colour mode)")
    parser.add_argument("--out", type=Path, default=Path("runs/lab"), help="folder for the episode store and the rig file")
    parser.add_argument("--json", type=Path, help="write the figures here")
    return parser.parse_args(argv)


def needs(policy: Path, task: str) -> tuple[bool, bool]:
    """Whether a policy needs the lab's cameras, and whether it needs the cube's pose perceived from them (a state
    policy for pick_cube: the mirror places the cube from its marker). Reach needs neither: renders cost
    franky-sim real time."""
    from tether.cli.deploy import policy_inputs
    from tether.cli.eval import load_checked
    from tether.policies.registry import find_checkpoint

    loaded = load_checked(find_checkpoint(policy))
    loaded.close()
    pixels, task_keys = policy_inputs(loaded.observation_keys)
    perceived = task != "reach" and bool(task_keys)
    return pixels or perceived, perceived


def deploy(args: argparse.Namespace, gaps: Gaps) -> dict:
    from tether.cli.deploy import run_deploy

    cameras, perception = needs(args.policy, args.task)
    with Lab(gaps, task=args.task, fps=args.fps, seed=args.seed, cameras=cameras, perception=perception,
             folder=args.out / "lab") as lab, \
            judging(lab, lab.rig, seed=args.seed, announce=not perception) as judge:
        first = lab.world.read()
        summary = run_deploy(args.policy, lab.rig, args.episodes, args.out / "episodes.zarr", seed=args.seed)
        last = lab.world.read()
        seconds = last.wall_time - first.wall_time
        figures = {
            **summary, "gaps": args.gap, "gap_settings": gaps.model_dump(mode="json"), "perception": perception,
            "real_time_factor": (last.sim_time - first.sim_time) / seconds,
            "camera_fps": {name: render.frames / seconds for name, render in lab.renders.items()},
            "cube_placements": judge.placements,
        }
        if args.task == "pick_cube":  # the truth, whoever judged during the run (the mirror's success is what the rig believed)
            truth = judge.outcomes[: summary["episodes"]]
            figures |= {"rig_success_rate": summary["success_rate"], "true_outcomes": truth,
                        "success_rate": float(np.mean(truth)) if truth else 0.0}
        return figures


def serve(args: argparse.Namespace, gaps: Gaps) -> None:
    with Lab(gaps, task=args.task, seed=args.seed, cameras=False, folder=args.out / "lab") as lab, \
            judging(lab, lab.rig, seed=args.seed):
        print(lab.rig_path.read_text(), flush=True)
        print(f"# lab running: tether deploy --rig {lab.rig_path} (prefix: {' '.join(NO_REALTIME)}); Ctrl-C stops", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while lab.process.poll() is None and not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass


def main(argv: list[str]) -> None:
    if may_raise_priority():
        os.execvp(NO_REALTIME[0], [*NO_REALTIME, sys.executable, "-m", "benchmarks.lab", *argv])
    args = parse(argv)
    gaps = Gaps.named(args.gap)
    if args.serve:
        serve(args, gaps)
        return
    summary = deploy(args, gaps)
    print(f"{summary['task']} in the lab (gaps: {', '.join(args.gap) or 'none'}): success {summary['success_rate']:.2f} "
          f"over {summary['episodes']} episodes; real-time factor {summary['real_time_factor']:.2f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
