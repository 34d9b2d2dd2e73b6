"""Success rate against environment steps for SAC in the twin, aggregated over seeds with rliable.

Conditions are the product of tasks x observation modes x demo counts x intervention settings;
each runs for --seeds seeds (`tether.cli.train.run_sac`, the same code path as `tether train sac`).
At every evaluation point the interquartile mean (IQM) of success over seeds is reported with a
95% stratified-bootstrap interval, plus the first step at which the IQM reaches 0.8 and 0.9.

The full study of issue 5 (2 tasks x 2 obs x {10, 20} demos x {none, scripted} x 5 seeds, 20k
steps each) is days of CPU on a laptop-class machine; --preset small is what fits in minutes.

    .venv/bin/python -m benchmarks.sample_efficiency --preset small
    .venv/bin/python -m benchmarks.sample_efficiency --preset demo --jobs 2   # tether demo's task, BC 0 vs 1
    .venv/bin/python -m benchmarks.sample_efficiency --tasks pick_cube peg_insert --obs state pixels \\
        --demos 10 20 --interventions none scripted --seeds 5 --steps 20000
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
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
    "small": dict(rig="twin_panda", tasks=["pick_cube"], obs=["state"], demos=[20], interventions=["none", "scripted"],
                  bc_weights=[0.0], seeds=3, steps=3000, eval_every=500, eval_episodes=10),
    # What `tether demo` trains on (the cube within +-2 cm, 60-step episodes), with and without its BC term.
    "demo": dict(rig="twin_panda_demo", tasks=["pick_cube"], obs=["state"], demos=[20], interventions=["scripted"],
                 bc_weights=[0.0, 1.0], seeds=3, steps=3000, eval_every=500, eval_episodes=10),
    "issue": dict(rig="twin_panda", tasks=["pick_cube", "peg_insert"], obs=["state", "pixels"], demos=[10, 20],
                  interventions=["none", "scripted"], bc_weights=[0.0], seeds=5, steps=20_000, eval_every=1000,
                  eval_episodes=20),
}
# The learner settings of the study: RLPD's REDQ ensemble at UTD 4 with a faster target (see README).
SAC = dict(num_critics=10, critic_subsample=2, utd_ratio=4, tau=0.02, batch_size=128, hidden_dims=(128, 128))
THRESHOLDS = (0.8, 0.9)
RLIF_PENALTY = 1.0


def iqm_curve(scores: np.ndarray, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """scores (runs, points) -> IQM per point (points,) and its 95% bootstrap interval (2, points)."""
    from rliable import library, metrics

    def per_point(x: np.ndarray) -> np.ndarray:  # x: (runs, tasks=1, points)
        return np.array([metrics.aggregate_iqm(x[..., t]) for t in range(x.shape[-1])])

    point, interval = library.get_interval_estimates({"c": scores[:, None, :]}, per_point, reps=reps,
                                                     random_state=np.random.RandomState(seed))
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


def one_run(run: dict) -> tuple[list[dict], float]:
    """One seed of one condition (a process of its own when --jobs > 1): its curve and wall seconds."""
    torch.set_num_threads(run["threads"])
    start = time.perf_counter()
    result = run_sac(task=run["task"], obs_mode=run["obs"], steps=run["steps"], seed=run["seed"],
                     sac=SACConfig(**SAC, bc_weight=run["bc_weight"]), loop=run["loop"], rig=run["rig"],
                     demo_episodes=run["demos"], interventions=run["interventions"], out=run["out"],
                     progress=False)
    return result.curve, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--rig")
    parser.add_argument("--tasks", nargs="+")
    parser.add_argument("--obs", nargs="+", choices=["state", "pixels"])
    parser.add_argument("--demos", nargs="+", type=int)
    parser.add_argument("--interventions", nargs="+", choices=["none", "scripted"])
    parser.add_argument("--bc-weights", nargs="+", type=float)
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--eval-every", type=int)
    parser.add_argument("--eval-episodes", type=int)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/sample_efficiency"))
    args = parser.parse_args()
    settings = {**PRESETS[args.preset], **{k: v for k, v in vars(args).items()
                                           if k in PRESETS["small"] and v is not None}}
    base_loop = LoopConfig(eval_every=settings["eval_every"], eval_episodes=settings["eval_episodes"])

    grid = list(itertools.product(settings["tasks"], settings["obs"], settings["demos"], settings["interventions"],
                                  settings["bc_weights"]))
    runs = [
        # With interventions, the RLIF penalty lets each takeover teach (HIL-SERL + RLIF).
        dict(task=task, obs=obs, demos=demos, interventions=interventions, bc_weight=bc, seed=seed,
             rig=settings["rig"], steps=settings["steps"], threads=args.threads,
             loop=base_loop.model_copy(update={"rlif_penalty": RLIF_PENALTY if interventions == "scripted" else 0.0}),
             out=args.runs_dir / f"{settings['rig']}_{task}_{obs}_{demos}_{interventions}_bc{bc:g}_s{seed}")
        for task, obs, demos, interventions, bc in grid for seed in range(settings["seeds"])
    ]
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        outcomes = list(pool.map(one_run, runs))

    conditions = []
    for index, (task, obs, demos, interventions, bc) in enumerate(grid):
        name = (f"{task} {obs} {demos} demos" + (" + interventions" if interventions == "scripted" else "")
                + (f" + BC {bc:g}" if bc else ""))
        mine = outcomes[index * settings["seeds"]:(index + 1) * settings["seeds"]]
        curves, seconds = [curve for curve, _ in mine], [wall for _, wall in mine]
        for seed, curve in enumerate(curves):
            print(f"{name} seed {seed}: {[p['success_rate'] for p in curve]} ({seconds[seed]:.0f} s)")
        steps = [p["env_steps"] for p in curves[0]]
        scores = np.array([[p["success_rate"] for p in curve] for curve in curves])
        iqm, interval = iqm_curve(scores, args.bootstrap, seed=0)
        conditions.append({
            "name": name, "task": task, "obs": obs, "demos": demos, "interventions": interventions, "bc_weight": bc,
            "steps": steps, "scores": scores.tolist(), "iqm": iqm.tolist(),
            "ci_low": interval[0].tolist(), "ci_high": interval[1].tolist(),
            **{f"steps_to_{level}": first_step_reaching(steps, iqm, level) for level in THRESHOLDS},
            "intervention_rate": float(np.mean([c[-1]["intervention_rate"] for c in curves])),
            "updates_per_s": float(np.mean([c[-1]["updates_per_s"] for c in curves])),
            "wall_s_per_run": float(np.mean(seconds)),
        })
    figure = HERE / "results" / "sample_efficiency.png"
    plot(conditions, figure)
    rows = [[c["name"], settings["seeds"], settings["steps"],
             f"{c['iqm'][-1]:.2f} [{c['ci_low'][-1]:.2f}, {c['ci_high'][-1]:.2f}]",
             c["steps_to_0.8"] or "not reached", c["steps_to_0.9"] or "not reached",
             f"{c['intervention_rate']:.2f}", f"{c['wall_s_per_run'] / 60:.1f}"] for c in conditions]
    table = markdown_table(["condition", "seeds", "env steps", "final success IQM [95% CI]", "IQM >= 0.8 at",
                            "IQM >= 0.9 at", "intervention rate", "minutes per run"], rows)
    notes = (f"SAC in the twin rig {settings['rig']} (`tether.cli.train.run_sac`), settings {json.dumps(SAC)} "
             f"and the BC weights listed; with interventions "
             f"the scripted operator takes over when the policy strays and RLIF penalty {RLIF_PENALTY} applies; "
             f"evaluation every "
             f"{settings['eval_every']} steps over {settings['eval_episodes']} episodes with the deterministic "
             f"policy; IQM over seeds with 95% stratified-bootstrap intervals (rliable, {args.bootstrap} "
             f"replicates). Scale run: preset '{args.preset}' {json.dumps(settings)}, torch threads "
             f"{args.threads}, {args.jobs} runs at once. Curves: results/sample_efficiency.png. "
             f"`.venv/bin/python -m benchmarks.sample_efficiency --preset {args.preset} --jobs {args.jobs}`")
    write_results("sample_efficiency", {"settings": settings, "sac": SAC, "conditions": conditions}, table, notes)


if __name__ == "__main__":
    main()
