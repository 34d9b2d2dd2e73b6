"""Success of the diffusion policy trained on scripted demos, then after residual RL fine-tuning, in the twin.

Per task x observation mode x demo count x seed, the same code paths as the command line:
  1. record N scripted-operator episodes into a store (`tether sim expert --out`);
  2. train a diffusion policy on them (`tether train diffusion`; twin rollouts pick best/);
  3. evaluate best/ over --episodes held-out episodes (`tether eval`): the base success;
  4. fine-tune SAC on the frozen base for --finetune-steps environment steps, each way of --steer
     (`tether train sac --base-policy best/ --steer residual|noise`, its defaults: the residual's safe recipe,
     `tether.policies.steering.RESIDUAL_SAC`), evaluating every --finetune-eval-every steps;
  5. evaluate each fine-tuned policy (base + steering), the final one and the one its best evaluation picked
     (best/), on the same --episodes episodes.
`--finetune-steps 0` stops after step 3 (the diffusion policy's own figures).
Success is aggregated over seeds as the interquartile mean (IQM) with a 95% stratified-bootstrap interval
(rliable); per seed, "steps to beat the base" is the first fine-tuning evaluation above the base's success on the
same episodes, and "worst dip" the most any fine-tuning evaluation fell below it (its evaluations play episodes
`EVAL_SEEDS + seed`, ...; negative: never below). A diffusion policy's noise is seeded by each episode's first
observation, so these comparisons are paired: until the steering moves, an evaluation equals the base's.

The fine-tuning protocol: a base deliberately weak (`--steps 500`: about 0.3 on pick_cube state), 5 seeds,
10,000 steps:

    .venv/bin/python -m benchmarks.diffusion_success --obs state --steps 500 --seeds 5 --steer residual noise \
        --finetune-eval-every 1000 --finetune-eval-episodes 20 --tag finetune

The issue's protocol is 100 demos, 3 training seeds x 50 evaluation episodes, per task and observation mode;
anything less is labelled REDUCED with the differences in its notes. The recipe is `tether train diffusion`'s
default (preset `cpu`, DDPM / DDIM-10, delta actions) unless flags choose another.

    .venv/bin/python -m benchmarks.diffusion_success --obs state --finetune-steps 0     # the diffusion policy
    .venv/bin/python -m benchmarks.diffusion_success --obs pixels --finetune-steps 0
    .venv/bin/python -m benchmarks.diffusion_success --obs state --action-targets absolute --tag absolute
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.report import markdown_table, write_results
from benchmarks.sample_efficiency import iqm_curve
from tether.cli.eval import evaluate_checkpoint
from tether.cli.sim import run_expert
from tether.cli.train import layered, make_twin, run_sac
from tether.datasets.store import EpisodeStore
from tether.policies.diffusion import DiffusionConfig, DiffusionPolicy
from tether.policies.diffusion_train import DEFAULT_PRESET, PRESETS, TrainConfig, train_diffusion
from tether.policies.registry import ResetOnEpisode
from tether.policies.sac import SACConfig
from tether.policies.sac_loop import BEST_DIR, CHECKPOINT_DIR, EVAL_SEEDS, LoopConfig, evaluate
from tether.policies.steering import NOISE_SCALE, Steering

PROTOCOL = dict(demos=[100], seeds=3, episodes=50)
"""The issue's protocol per task and observation mode; the recipe (preset, objective, action targets) is what
`tether train diffusion` uses by default unless flags say otherwise."""
FINETUNE_PROTOCOL = dict(seeds=5, finetune_steps=10_000)
"""The fine-tuning figures' protocol: 5 seeds, 10,000 environment steps (the base deliberately weak: --steps)."""
EVAL_SEED = 100_000  # evaluation episodes never share a seed with a demo
DEMO_SEED = 10_000  # seed s records demos from episode seed s * DEMO_SEED on
FIGURES = "figures.json"
BASE_ON_FINETUNE_EPISODES = "base_on_finetune_episodes"
"""The base's success on the episodes every fine-tuning evaluation plays: the paired reference of the dips."""
NOISE_START = "noise_start_on_finetune_episodes"
"""Noise steering's starting point on those episodes: its actor's zero output decoded (the sampler's zero noise),
what it acts like before it learns (a residual starts as the base itself: zero-initialised)."""


def run_condition(task: str, obs: str, demos: int, seed: int, args: argparse.Namespace) -> dict:
    """Steps 1-5 of the module docstring for one seed; returns its figures (kept in the run folder, so a run
    that stopped resumes at the first seed without them)."""
    start = time.perf_counter()
    folder = args.runs_dir / f"{task}_{obs}_{demos}demos_{args.action_targets}_s{seed}"
    if (folder / FIGURES).is_file():
        return with_derived_figures(json.loads((folder / FIGURES).read_text()), folder, args)
    store = folder / "demos.zarr"
    if not store.exists():
        run_expert(task, args.rig, demos, seed * DEMO_SEED, out=store)
    policy_config = DiffusionConfig.model_validate(layered(PRESETS[args.preset]["diffusion"], {
        "objective": args.objective, "action_targets": args.action_targets}))
    train_config = TrainConfig.model_validate({**PRESETS[args.preset]["diffusion_train"],
                                               **({"steps": args.steps} if args.steps else {}),
                                               "checkpoint_every": args.diffusion_eval_every,
                                               "eval_every": args.diffusion_eval_every,
                                               "eval_episodes": args.diffusion_eval_episodes})
    env = make_twin(task, obs, args.rig)
    train_diffusion(EpisodeStore(store), env.observation_space, policy_config, train_config, seed=seed,
                    eval_env=env, out_dir=folder / "dp", progress=False)
    env.close()
    trained = time.perf_counter()
    figures = {"task": task, "obs": obs, "demos": demos, "seed": seed,
               "diffusion_curve": [(r["step"], r["success_rate"]) for r in _report(folder)["rows"]
                                   if "success_rate" in r],
               "minutes_diffusion": (trained - start) / 60}
    figures = with_base_figures(figures, folder, args)
    figures["minutes_total"] = (time.perf_counter() - start) / 60
    return with_derived_figures(figures, folder, args)


def with_derived_figures(figures: dict, folder: Path, args: argparse.Namespace) -> dict:
    """The base's figures and each --steer fine-tuning's figures, those a run lacks added and saved with the
    run's figures."""
    figures = with_base_figures(figures, folder, args)
    (folder / FIGURES).write_text(json.dumps(figures))
    for steer in args.steer if args.finetune_steps else ():
        figures |= finetune(figures["task"], figures["obs"], figures["seed"], folder, args, steer)
    print(json.dumps(figures))
    return figures


def with_base_figures(figures: dict, folder: Path, args: argparse.Namespace) -> dict:
    """The base checkpoint's success on the held-out episodes, with --fast-steps sampler steps on the same
    episodes, and on the episodes of the fine-tuning's evaluations, where the run lacks them."""
    if "base_success" not in figures:
        figures["base_success"] = evaluate_checkpoint(folder / "dp" / "best", figures["task"], args.episodes,
                                                      seed=EVAL_SEED, rig=args.rig).success_rate
    key = f"fast_{args.fast_steps}_success"
    if key not in figures:
        figures[key] = evaluate_checkpoint(folder / "dp" / "best", figures["task"], args.episodes, seed=EVAL_SEED,
                                           rig=args.rig, sampler_steps=args.fast_steps).success_rate
    if args.finetune_steps and BASE_ON_FINETUNE_EPISODES not in figures:  # what each fine-tuning point is held to
        figures[BASE_ON_FINETUNE_EPISODES] = evaluate_checkpoint(
            folder / "dp" / "best", figures["task"], args.finetune_eval_episodes,
            seed=EVAL_SEEDS + figures["seed"], rig=args.rig).success_rate
    if args.finetune_steps and "noise" in args.steer and NOISE_START not in figures:
        figures[NOISE_START] = noise_start_success(folder / "dp" / "best", figures, args)
    return figures


def noise_start_success(base_path: Path, figures: dict, args: argparse.Namespace) -> float:
    """Success of noise steering before it learns (every chunk from the sampler's zero noise) on the episodes of
    the fine-tuning's evaluations."""
    base = DiffusionPolicy.load(base_path)
    zero = np.zeros(base.config.horizon * base.action_dim, np.float32)
    policy = Steering(base_path, "noise", NOISE_SCALE).policy(lambda obs: zero, base, asynchronous=False)
    env = make_twin(figures["task"], figures["obs"], args.rig)
    try:
        return evaluate(policy.act, ResetOnEpisode(env, policy), args.finetune_eval_episodes,
                        seed=EVAL_SEEDS + figures["seed"]).success_rate
    finally:
        env.close()


def _report(folder: Path) -> dict:
    return json.loads((folder / "dp" / "report.json").read_text())


def finetune(task: str, obs: str, seed: int, folder: Path, args: argparse.Namespace, steer: str) -> dict:
    """Steps 4-5 for one way of steering the frozen best/ and its evaluation; the figures they add (kept in the
    run folder, so a run that stopped resumes at the first steering without them)."""
    saved = folder / f"{steer}_{FIGURES}"
    if saved.is_file():
        return json.loads(saved.read_text())
    loop = LoopConfig(eval_every=args.finetune_eval_every, eval_episodes=args.finetune_eval_episodes)
    demo_episodes = args.finetune_demos if steer == "residual" else 0  # noise steering learns from its own chunks
    while True:
        try:
            result = run_sac(task=task, obs_mode=obs, steps=args.finetune_steps, seed=seed, sac=SACConfig(),
                               loop=loop, demo_episodes=demo_episodes, rig=args.rig, out=folder / steer,
                               progress=False, base_policy=folder / "dp" / "best", steer=steer,
                               residual_scale=args.residual_scale)
            break
        except RuntimeError as error:  # the operator, bounded to residuals of a weak base, cannot finish demos
            if not demo_episodes:
                raise
            print(f"{folder.name}: {error}; fine-tuning without demos (recorded in the results)")
            demo_episodes = 0
    final, best = (evaluate_checkpoint(folder / steer / name, task, args.episodes, seed=EVAL_SEED, rig=args.rig)
                   for name in (CHECKPOINT_DIR, BEST_DIR))
    curve = [(int(p["env_steps"]), float(p["success_rate"])) for p in result.curve]
    figures = {f"{steer}_demos": demo_episodes, f"{steer}_success": final.success_rate,
               f"{steer}_best_success": best.success_rate, f"{steer}_curve": curve}
    saved.write_text(json.dumps(figures))
    return figures


def reduced_from_protocol(args: argparse.Namespace) -> list[str]:
    """How this run's settings differ from the issue's protocol (empty for a full run)."""
    protocol = PROTOCOL | (FINETUNE_PROTOCOL if args.finetune_steps else {})
    return [f"{name} {getattr(args, name)} (protocol {value})" for name, value in protocol.items()
            if getattr(args, name) != value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["pick_cube"], choices=["pick_cube", "peg_insert"])
    parser.add_argument("--obs", default="state", choices=["state", "pixels"])
    parser.add_argument("--demos", nargs="+", type=int, default=PROTOCOL["demos"])
    parser.add_argument("--seeds", type=int, default=PROTOCOL["seeds"])
    parser.add_argument("--episodes", type=int, default=PROTOCOL["episodes"], help="evaluation episodes per seed")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET, help="the training recipe")
    parser.add_argument("--objective", choices=["ddpm", "flow"], default="ddpm")
    parser.add_argument("--action-targets", choices=["delta", "absolute"], default="delta",
                        help="what the policy's chunks hold (DiffusionConfig.action_targets)")
    parser.add_argument("--tag", help="suffix of the results' name, so a comparison does not replace the default's")
    parser.add_argument("--steps", type=int, help="diffusion gradient steps (default: the preset's)")
    parser.add_argument("--diffusion-eval-every", type=int, default=2_000,
                        help="gradient steps between twin rollouts (and checkpoints)")
    parser.add_argument("--diffusion-eval-episodes", type=int, default=10)
    parser.add_argument("--fast-steps", type=int, default=3, help="sampler steps of the few-step sampler compared")
    parser.add_argument("--finetune-steps", type=int, default=10_000)
    parser.add_argument("--steer", nargs="+", default=["residual"], choices=["residual", "noise"],
                        help="how SAC fine-tunes the frozen base: residual actions and/or its sampler's noise (DSRL)")
    parser.add_argument("--finetune-eval-every", type=int, default=2_000)
    parser.add_argument("--finetune-eval-episodes", type=int, default=10)
    parser.add_argument("--finetune-demos", type=int, default=20, help="scripted demos in the residual's buffer")
    parser.add_argument("--residual-scale", type=float, default=0.2)
    parser.add_argument("--rig", default="twin_panda")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/diffusion_success"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    conditions = []
    for task, demos in itertools.product(args.tasks, args.demos):
        runs = [run_condition(task, args.obs, demos, seed, args) for seed in range(args.seeds)]
        condition = {"task": task, "obs": args.obs, "demos": demos, "runs": runs}
        steers = args.steer if args.finetune_steps else []
        for name in ("base", f"fast_{args.fast_steps}", *steers, *(f"{steer}_best" for steer in steers)):
            (iqm,), ci = iqm_curve(np.array([[r[f"{name}_success"]] for r in runs]), args.bootstrap, seed=0)
            condition |= {f"{name}_iqm": iqm, f"{name}_ci": ci[:, 0].tolist()}
        conditions.append(condition)
    rows = [[f"{c['task']} {c['obs']} {c['demos']} demos", args.seeds, args.episodes, _interval(c, "base"),
             _interval(c, f"fast_{args.fast_steps}"),
             *[cell for steer in steers for cell in (
                 _interval(c, steer), _interval(c, f"{steer}_best"),
                 ", ".join(str(steps_to_beat(r, steer) or "not within budget") for r in c["runs"]),
                 ", ".join(f"{worst_dip(r, steer):+.2f}" for r in c["runs"]))],
             *([", ".join(f"{r[NOISE_START]:.2f} / {r[BASE_ON_FINETUNE_EPISODES]:.2f}" for r in c["runs"])]
               if "noise" in steers else []),
             f"{np.mean([r['minutes_diffusion'] for r in c['runs']]):.0f}",
             f"{np.mean([r['minutes_total'] for r in c['runs']]):.0f}"] for c in conditions]
    table = markdown_table(["condition", "seeds", "eval episodes", "diffusion policy success IQM [95% CI]",
                            f"same checkpoint, {args.fast_steps}-step sampler IQM [95% CI]",
                            *[column for steer in steers for column in (
                                f"+ {steer} SAC ({args.finetune_steps} steps) IQM [95% CI]",
                                f"{steer}: its best evaluation's policy IQM [95% CI]",
                                f"{steer}: steps to beat the base (per seed)",
                                f"{steer}: worst dip below the base (per seed)")],
                            *(["noise before it learns (zero noise) / the base, on the same episodes (per seed)"]
                              if "noise" in steers else []),
                            "minutes to train the diffusion policy", "minutes per seed before fine-tuning"], rows)
    train_steps = args.steps or PRESETS[args.preset]["diffusion_train"].get("steps", TrainConfig().steps)
    differences = reduced_from_protocol(args)
    label = ("REDUCED run, not the issue's protocol: " + "; ".join(differences) + ". "
             if differences else "The issue's protocol (100 demos, 3 training seeds x 50 evaluation episodes"
             + (f"; fine-tuning: 5 seeds x {args.finetune_steps} steps). " if args.finetune_steps else "). "))
    command = "`.venv/bin/python -m benchmarks.diffusion_success " + " ".join(_given_flags(parser, args)) + "`"
    residual = (f"Fine-tuning with `tether train sac --base-policy`'s defaults ({', '.join(args.steer)}): residual "
                f"scale {args.residual_scale} with {args.finetune_demos} scripted demos mapped into residuals, noise "
                f"steering from its own chunks, no interventions; steps to beat the base and the worst dip compare each "
                f"fine-tuning evaluation ({args.finetune_eval_episodes} episodes) with the base's success on the "
                f"same {args.finetune_eval_episodes} episodes, paired: a diffusion policy's noise is seeded by each "
                f"episode's first observation. 'Best evaluation's policy': the fine-tuning's best/ (its highest "
                f"evaluation, ties to the later). "
                if args.finetune_steps else "Fine-tuning not run (--finetune-steps 0). ")
    notes = (f"{label}{command}, torch threads {args.threads}, on a 2-core machine shared with other jobs. "
             f"Diffusion policy: preset '{args.preset}', objective {args.objective}, {args.action_targets} action "
             f"targets, {train_steps} gradient steps, best of twin rollouts every {args.diffusion_eval_every} steps "
             f"({args.diffusion_eval_episodes} episodes); its sampler: "
             f"{'DDIM-10' if args.objective == 'ddpm' else 'Euler, 2 steps'}, beside the same best/ checkpoint with "
             f"{args.fast_steps} sampler steps. {residual}Success over the same {args.episodes} held-out episode "
             f"seeds throughout. IQM over seeds with 95% stratified-bootstrap intervals (rliable, {args.bootstrap} "
             "replicates); with one seed the interval is a point.")
    name = f"diffusion_success_{args.obs}" + (f"_{args.tag}" if args.tag else "")
    write_results(name, {"settings": vars(args) | {"runs_dir": str(args.runs_dir)}, "reduced": differences,
                         "conditions": conditions}, table, notes)
    print(table)


def steps_to_beat(run: dict, steer: str) -> int | None:
    """The first fine-tuning evaluation above the base's success on the same episodes (None: none was)."""
    return next((steps for steps, success in run[f"{steer}_curve"] if success > run[BASE_ON_FINETUNE_EPISODES]), None)


def worst_dip(run: dict, steer: str) -> float:
    """How far the lowest fine-tuning evaluation fell below the base on the same episodes (negative: never)."""
    return run[BASE_ON_FINETUNE_EPISODES] - min(success for _, success in run[f"{steer}_curve"])


def _interval(condition: dict, name: str) -> str:
    if f"{name}_iqm" not in condition:
        return "not run"
    low, high = condition[f"{name}_ci"]
    return f"{condition[f'{name}_iqm']:.2f} [{low:.2f}, {high:.2f}]"


def _given_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The command-line flags whose values differ from the defaults, to quote the command that ran."""
    flags = []
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if action.option_strings and value != action.default and action.dest != "help":
            shown = " ".join(map(str, value)) if isinstance(value, list) else str(value)
            flags.append(f"{action.option_strings[0]} {shown}")
    return flags


if __name__ == "__main__":
    main()
