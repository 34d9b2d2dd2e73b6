"""Success rate against environment steps for SAC in the twin, aggregated over seeds with rliable.

Every run is `tether train sac` with its defaults (`tether.cli.train.run_sac`, SACConfig and LoopConfig
as they ship: the recipe), 20 scripted demos, and one of three kinds of human help:

- scripted: the scripted operator takes over when the policy strays (HIL-SERL) and the task's sparse reward
  is learned;
- none: no interventions, the task reward only (RLPD with demos);
- rlif: interventions as in 'scripted' but no task reward at all: only each takeover's rejected proposal,
  worth -RLIF_PENALTY (RLIF).

At every evaluation point (>= 20 episodes, deterministic policy, no interventions) the interquartile mean
(IQM) of success over seeds is reported with a 95% stratified-bootstrap interval, the first step at which
the IQM reaches 0.8 and 0.9, and per seed whether its last three evaluations agree within 0.15 (no collapse).

    .venv/bin/python -m benchmarks.sample_efficiency --preset demo --jobs 2   # `tether demo`'s narrowed rig
    .venv/bin/python -m benchmarks.sample_efficiency --preset full --jobs 2   # the full twin_panda pick_cube
    .venv/bin/python -m benchmarks.sample_efficiency --preset pixels_demo --jobs 2   # from the two cameras
    .venv/bin/python -m benchmarks.sample_efficiency --preset pixels_full --encoders pretrained random --jobs 2
    ... --resume   # continue interrupted runs from their checkpoints (every 5,000 steps) in --runs-dir
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from benchmarks.report import HERE, markdown_table, write_results
from tether.cli.train import run_sac
from tether.policies.sac import SACConfig
from tether.policies.sac_loop import LoopConfig

PRESETS = {
    # What `tether demo` trains on: the cube within +-2 cm.
    "demo": dict(rig="twin_panda_demo", tasks=["pick_cube"], obs=["state"], demos=[20], interventions=["scripted"],
                 seeds=5, steps=3000, eval_every=500, eval_episodes=20),
    "full": dict(rig="twin_panda", tasks=["pick_cube"], obs=["state"], demos=[20],
                 interventions=["scripted", "none", "rlif"], seeds=5, steps=30_000, eval_every=2500,
                 eval_episodes=20),
    # From the two cameras, on the demo rig: what the pretrained encoder is worth against the alternatives.
    "pixels_demo": dict(rig="twin_panda_demo", tasks=["pick_cube"], obs=["pixels"], demos=[20],
                        interventions=["scripted"], encoders=["pretrained", "random", "scratch"], seeds=5,
                        steps=5000, eval_every=1000, eval_episodes=20),
    # The same comparison on the full twin_panda pick_cube: about an hour per frozen-encoder run on one core.
    "pixels_full": dict(rig="twin_panda", tasks=["pick_cube"], obs=["pixels"], demos=[20], interventions=["scripted"],
                        encoders=["pretrained", "random", "scratch"], seeds=5, steps=30_000, eval_every=2500,
                        eval_episodes=20),
}
ENCODERS = {
    "pretrained": {"backbone": "twin", "freeze_backbone": True},
    "random": {"backbone": None, "freeze_backbone": True},
    "scratch": {"backbone": None, "freeze_backbone": False},
}
"""Camera encoders compared from pixels: the shipped pretrained trunk frozen (features cached), the same trunk
randomly initialised and frozen, and a trunk trained from scratch through the critic (DrQ)."""
HELP = {"none": "", "scripted": " + interventions", "rlif": " + interventions, RLIF reward only"}
THRESHOLDS = (0.8, 0.9)
RLIF_PENALTY = 1.0
"""Reward of a rejected proposal in the 'rlif' condition (unless --loop sets rlif_penalty)."""
COLLAPSE_SPREAD = 0.15
"""A seed collapsed if its last three evaluations spread wider than this."""


def iqm_curve(scores: np.ndarray, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """scores (runs, points) -> IQM per point (points,) and its 95% bootstrap interval (2, points)."""
    from rliable import library, metrics

    def per_point(x: np.ndarray) -> np.ndarray:  # x: (runs, tasks=1, points)
        return np.array([metrics.aggregate_iqm(x[..., t]) for t in range(x.shape[-1])])

    # rliable's stratified bootstrap draws its resamples from numpy's global generator whatever random_state says:
    # seed that one too (and restore it), or the same scores give intervals that differ from run to run.
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        point, interval = library.get_interval_estimates({"c": scores[:, None, :]}, per_point, reps=reps,
                                                         random_state=np.random.RandomState(seed))
    finally:
        np.random.set_state(state)
    return point["c"], interval["c"]


def first_step_reaching(steps: list[int], curve: np.ndarray, level: float) -> int | None:
    hits = np.flatnonzero(curve >= level)
    return int(steps[hits[0]]) if hits.size else None


def plot(conditions: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.8))
    for condition in conditions:
        steps = condition["steps"]
        axis.plot(steps, condition["iqm"], marker="o", label=condition["name"])
        axis.fill_between(steps, condition["ci_low"], condition["ci_high"], alpha=0.2)
    axis.set(xlabel="environment steps", ylabel="success rate (IQM, 95% CI)", ylim=(-0.02, 1.02))
    axis.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def one_run(run: dict) -> tuple[list[dict], float | None]:
    """One seed of one condition (a process of its own when --jobs > 1): its curve and its wall seconds over all
    its sittings (None for a run resumed from before curves recorded them)."""
    torch.set_num_threads(run["threads"])
    start = time.perf_counter()
    loop = run["loop"].model_copy(update=dict(eval_every=run["eval_every"], eval_episodes=run["eval_episodes"]))
    if run["help"] == "rlif":
        loop = loop.model_copy(update=dict(task_reward=False, rlif_penalty=loop.rlif_penalty or RLIF_PENALTY))
    result = run_sac(task=run["task"], obs_mode=run["obs"], steps=run["steps"], seed=run["seed"], sac=run["sac"],
                     loop=loop, rig=run["rig"], demo_episodes=run["demos"],
                     interventions="none" if run["help"] == "none" else "scripted", out=run["out"], progress=False,
                     resume=run["resume"])
    if not run["resume"]:
        return result.curve, time.perf_counter() - start
    return result.curve, result.curve[-1].get("wall_s")


def with_encoder(sac: SACConfig, encoder: str | None) -> SACConfig:
    """The SAC config of one encoder condition (None: as given)."""
    if encoder is None:
        return sac
    return sac.model_copy(update={"encoder": sac.encoder.model_copy(update=ENCODERS[encoder])})


def stable(scores: np.ndarray) -> list[bool]:
    """Per seed: its last three evaluations lie within COLLAPSE_SPREAD of each other."""
    last = scores[:, -3:]
    return [bool(spread <= COLLAPSE_SPREAD + 1e-9) for spread in last.max(axis=1) - last.min(axis=1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--rig")
    parser.add_argument("--tasks", nargs="+")
    parser.add_argument("--obs", nargs="+", choices=["state", "pixels"])
    parser.add_argument("--demos", nargs="+", type=int)
    parser.add_argument("--interventions", nargs="+", choices=sorted(HELP))
    parser.add_argument("--encoders", nargs="+", choices=sorted(ENCODERS), help="camera encoders to compare (pixels)")
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--eval-every", type=int)
    parser.add_argument("--eval-episodes", type=int)
    parser.add_argument("--sac", type=json.loads, default={}, help="JSON overrides of SACConfig (an ablation)")
    parser.add_argument("--loop", type=json.loads, default={}, help="JSON overrides of LoopConfig (an ablation)")
    parser.add_argument("--tag", help="suffix of the results' name, so an ablation does not replace the preset's")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/sample_efficiency"))
    parser.add_argument("--resume", action="store_true",
                        help="continue each run from its checkpoint in --runs-dir (a protocol spread over sittings)")
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    settings = {**preset, **{k: v for k, v in vars(args).items() if k in preset and v is not None}}
    sac = SACConfig.model_validate(args.sac)
    loop = LoopConfig.model_validate(args.loop)

    encoders = settings.get("encoders", [None])
    grid = list(itertools.product(settings["tasks"], settings["obs"], settings["demos"], settings["interventions"],
                                  encoders))
    runs = [
        dict(task=task, obs=obs, demos=demos, help=help_, seed=seed, sac=with_encoder(sac, encoder), loop=loop,
             rig=settings["rig"], steps=settings["steps"], eval_every=settings["eval_every"],
             eval_episodes=settings["eval_episodes"], threads=args.threads, resume=args.resume,
             out=args.runs_dir / f"{settings['rig']}_{task}_{obs}_{demos}_{help_}{f'_{encoder}' if encoder else ''}_s{seed}")
        for task, obs, demos, help_, encoder in grid for seed in range(settings["seeds"])
    ]
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        outcomes = list(pool.map(one_run, runs))

    conditions = []
    for index, (task, obs, demos, help_, encoder) in enumerate(grid):
        name = f"{task} {obs} {demos} demos{HELP[help_]}" + (f", {encoder} encoder" if encoder else "")
        mine = outcomes[index * settings["seeds"]:(index + 1) * settings["seeds"]]
        curves, seconds = [curve for curve, _ in mine], [wall for _, wall in mine]
        for seed, curve in enumerate(curves):
            print(f"{name} seed {seed}: {[p['success_rate'] for p in curve]} ({seconds[seed] or float('nan'):.0f} s)")
        steps = [p["env_steps"] for p in curves[0]]
        scores = np.array([[p["success_rate"] for p in curve] for curve in curves])
        iqm, interval = iqm_curve(scores, args.bootstrap, seed=0)
        conditions.append({
            "name": name, "task": task, "obs": obs, "demos": demos, "help": help_, "encoder": encoder,
            "steps": steps, "scores": scores.tolist(), "iqm": iqm.tolist(),
            "ci_low": interval[0].tolist(), "ci_high": interval[1].tolist(),
            **{f"steps_to_{level}": first_step_reaching(steps, iqm, level) for level in THRESHOLDS},
            "stable_seeds": stable(scores),
            "intervention_rate": float(np.mean([c[-1]["intervention_rate"] for c in curves])),
            "updates_per_s": float(np.mean([c[-1]["updates_per_s"] for c in curves])),
            "wall_s_per_run": float(np.mean([s for s in seconds if s is not None] or [np.nan])),
        })
    name = f"sample_efficiency_{args.preset}" + (f"_{args.tag}" if args.tag else "")
    plot(conditions, HERE / "results" / f"{name}.png")
    rows = [[c["name"], settings["seeds"], settings["steps"],
             f"{c['iqm'][-1]:.2f} [{c['ci_low'][-1]:.2f}, {c['ci_high'][-1]:.2f}]",
             c["steps_to_0.8"] or "not reached", c["steps_to_0.9"] or "not reached",
             f"{sum(c['stable_seeds'])} of {len(c['stable_seeds'])}",
             f"{c['intervention_rate']:.2f}",
             f"{c['wall_s_per_run'] / 60:.1f}" if np.isfinite(c["wall_s_per_run"]) else "n/a"] for c in conditions]
    table = markdown_table(["condition", "seeds", "env steps", "final success IQM [95% CI]", "IQM >= 0.8 at",
                            "IQM >= 0.9 at", "seeds without collapse", "intervention rate", "minutes per run"], rows)
    notes = (f"SAC in the twin rig {settings['rig']} with the defaults of `tether train sac` "
             f"(`tether.cli.train.run_sac`; SAC {json.dumps(json.loads(sac.model_dump_json()))}, loop overrides "
             f"{json.dumps(args.loop)}; an encoder condition replaces the encoder's "
             f"{json.dumps({k: ENCODERS[k] for k in encoders if k})}); with interventions "
             f"the scripted operator takes over when the policy strays (RLIF penalty {loop.rlif_penalty}; "
             f"{RLIF_PENALTY} in the RLIF-only condition unless set). "
             f"Evaluation every {settings['eval_every']} steps over {settings['eval_episodes']} episodes with the "
             f"deterministic policy and no interventions; IQM over seeds with 95% stratified-bootstrap intervals "
             f"(rliable, {args.bootstrap} replicates); a seed has no collapse when its last three evaluations lie "
             f"within {COLLAPSE_SPREAD}. Settings {json.dumps(settings)}, torch threads {args.threads}, {args.jobs} "
             f"runs at once. Minutes per run: wall time over all of a run's sittings (n/a for runs from before "
             f"runs recorded it). Curves: results/{name}.png. "
             f"`.venv/bin/python -m benchmarks.sample_efficiency {shlex.join(sys.argv[1:])}`")
    write_results(name, {"settings": settings, "sac": json.loads(sac.model_dump_json()),
                         "loop": json.loads(loop.model_dump_json()), "conditions": conditions},
                  table, notes)


if __name__ == "__main__":
    main()
