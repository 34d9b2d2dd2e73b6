"""`tether demo`: the main job on the embedded default, through the ROS 2 graph.

1. the scripted operator records demonstrations into a store (teleop mode);
2. the untrained policy is evaluated (no interventions);
3. human-in-the-loop SAC: actor + learner + recorder + the scripted operator, who takes over
   when the policy strays; every transition goes to the learner and the store;
4. the final policy is evaluated without interventions, and the evaluation is recorded.

It writes DIR/summary.json, a learning-curve PNG, an evaluation contact sheet and the stores.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from tether.cli.output import ForceOption, claim_output
from tether.cli.robot import record_demos, run_hil
from tether.config import load_rig

DEMO_RIG = "twin_panda_demo"
"""pick_cube with the cube within +-2 cm and 80-step episodes: sized so training shows within 20 min on 2 cores."""


def _evaluate(rig: str, policy: Path, out_store: Path, episodes: int, *, seed: int, time_scale: float) -> list[dict]:
    """Episodes of `policy` alone through the graph, recorded with the cameras for a person to look at."""
    from tether.robot_ws.graph import Graph, GraphSpec

    spec = GraphSpec(
        rig=load_rig(rig), nodes=("twin", "arm", "cameras", "actor", "recorder"), obs_mode="all",
        actor_mode="eval", policy=policy, store=out_store, source="policy", max_episodes=episodes,
        time_scale=time_scale, seed=seed,
    )
    with Graph(spec) as graph:
        recorder = graph.node("recorder")
        graph.wait(lambda: recorder.committed + recorder.discarded >= episodes)
    return graph.node("actor").episode_results


def _initial_checkpoint(rig: str, out: Path, obs: str, seed: int) -> Path:
    """The learner's starting weights (the default recipe and the seed the learner node uses), for the 'before'
    score."""
    from tether import spaces
    from tether.policies.sac import SACAgent, SACConfig
    from tether.robot_ws.graph import GraphSpec, observation_space_of

    spec = GraphSpec(rig=load_rig(rig), nodes=(), obs_mode=obs)
    agent = SACAgent(observation_space_of(spec), spaces.action_space(spec.rig).shape[0], SACConfig(), seed=seed)
    return agent.save(out / "initial")


@contextmanager
def _timed(phase_s: dict[str, float], name: str) -> Iterator[None]:
    """Wall seconds of one phase of the demo, for the summary."""
    began = time.perf_counter()
    yield
    phase_s[name] = time.perf_counter() - began


def _trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of each value and up to `window - 1` before it (no padding: the ends are not pulled to zero)."""
    sums = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def _learning_curve(episodes: list[dict], before: float, after: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.cumsum([e["length"] for e in episodes])
    success = np.array([e["success"] for e in episodes], float)
    intervention = np.array([e["interventions"] / max(e["length"], 1) for e in episodes])
    window = max(1, min(5, len(episodes)))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, _trailing_mean(success, window), label=f"success (last {window} episodes)")
    ax.plot(steps, _trailing_mean(intervention, window), label=f"intervention rate (last {window} episodes)")
    ax.axhline(before, color="grey", ls=":", label=f"eval before {before:.2f}")
    ax.axhline(after, color="green", ls="--", label=f"eval after {after:.2f}")
    ax.set(xlabel="environment steps (10 Hz)", ylabel="rate", ylim=(-0.05, 1.05), title="HIL training in the twin")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def demo(
    out: Path | None = typer.Option(None, "--out", help="Output folder (default runs/demo-<time>)."),
    rig: str = typer.Option(
        DEMO_RIG, "--rig", help="Twin rig to train on (default: the twin with the cube's start region narrowed)."
    ),
    demo_episodes: int = typer.Option(20, "--demo-episodes", min=1, help="Scripted demonstrations to record."),
    steps: int = typer.Option(4000, "--steps", min=1, help="HIL training steps (10 Hz control)."),
    eval_episodes: int = typer.Option(20, "--eval-episodes", min=1, help="Evaluation episodes before and after."),
    record_time_scale: float = typer.Option(
        3.0, "--record-time-scale", min=0.1, max=20.0, help="Twin speed vs real time while recording the demos."
    ),
    time_scale: float = typer.Option(
        1.0, "--time-scale", min=0.1, max=20.0,
        help="Twin speed during training and both evaluations (the policy is scored at the speed it trains at: "
        "faster, its sensing-to-command latency grows in twin time); above the learner's update rate / UTD "
        "the achieved UTD drops.",
    ),
    seed: int = typer.Option(0, "--seed"),
    force: bool = ForceOption,
) -> None:
    """HIL training in the twin through the ROS 2 graph, with evaluation, plots and a summary."""
    out = out or Path(f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    claim_output(out, "--out", force=force)
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    if "ROS_DOMAIN_ID" not in os.environ and load_rig(rig).network.domain_id is None:
        # The rig keeps DDS on this host; a domain of its own keeps other tether graphs on this host out.
        os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)
        console.print(f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} (set it to choose another)")
    start = time.perf_counter()
    phase_s: dict[str, float] = {}
    obs = "state"

    console.print(f"[bold]1/4[/] recording {demo_episodes} scripted demonstrations")
    with _timed(phase_s, "record_demos"):
        demos = record_demos(rig, out / "demos.zarr", demo_episodes, seed=seed, time_scale=record_time_scale)

    console.print(f"[bold]2/4[/] evaluating the untrained policy ({eval_episodes} episodes)")
    with _timed(phase_s, "eval_before"):
        initial = _initial_checkpoint(rig, out, obs, seed)
        before = _evaluate(rig, initial, out / "eval_before.zarr", eval_episodes, seed=10_000 + seed,
                           time_scale=time_scale)

    console.print(f"[bold]3/4[/] human-in-the-loop training for {steps} steps")
    console.print(f"    metrics: tensorboard --logdir {out / 'hil'}  (and {out / 'hil' / 'metrics.jsonl'})")
    with _timed(phase_s, "hil_training"):
        hil = run_hil(rig, out / "hil", out / "demos.zarr", steps, obs=obs, config=None, seed=seed,
                      time_scale=time_scale)

    console.print(f"[bold]4/4[/] evaluating the trained policy ({eval_episodes} episodes)")
    with _timed(phase_s, "eval_after"):
        after = _evaluate(rig, out / "hil" / "checkpoint", out / "eval_after.zarr", eval_episodes,
                          seed=10_000 + seed, time_scale=time_scale)
    success_before = float(np.mean([e["success"] for e in before]))
    success_after = float(np.mean([e["success"] for e in after]))
    episodes = hil["episodes"]
    total_steps = sum(e["length"] for e in episodes)
    thirds = np.array_split(np.array([[e["interventions"], e["length"]] for e in episodes]), 3)
    intervention_over_time = [float(t[:, 0].sum() / max(t[:, 1].sum(), 1)) for t in thirds if len(t)]
    _learning_curve(episodes, success_before, success_after, out / "learning_curve.png")
    from tether.datasets.store import EpisodeStore
    from tether.datasets.view import contact_sheet

    contact_sheet(EpisodeStore(out / "eval_after.zarr"), 0, out / "eval_after_episode0.png")
    summary = {
        "rig": rig,
        "success_before": success_before,
        "success_after": success_after,
        "eval_episodes": eval_episodes,
        "env_steps": int(hil["learner"]["env_steps"]),
        "updates": int(hil["learner"]["critic_updates"]),
        "updates_per_s": hil["learner"]["updates_per_s"],
        "intervention_rate": float(sum(e["interventions"] for e in episodes) / max(total_steps, 1)),
        "intervention_rate_by_third": intervention_over_time,
        "hil_episodes": len(episodes),
        "demo_episodes": demos["episodes"],
        "time_scale": {"record": record_time_scale, "train_and_eval": time_scale},
        "utd_achieved": hil["learner"].get("critic_updates", 0) / max(hil["learner"].get("env_steps", 1), 1),
        "wall_s": time.perf_counter() - start,
        "phase_s": phase_s,
        "files": {
            "learning_curve": "learning_curve.png",
            "eval_contact_sheet": "eval_after_episode0.png",
            "stores": ["demos.zarr", "hil/episodes.zarr", "eval_before.zarr", "eval_after.zarr"],
            "checkpoint": "hil/checkpoint",
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))

    table = Table(title=f"tether demo: pick_cube on {rig} ({out})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for label, value in [
        ("success before training", f"{success_before:.2f} ({eval_episodes} episodes)"),
        ("success after training", f"{success_after:.2f} ({eval_episodes} episodes)"),
        ("intervention rate, by third of training", " / ".join(f"{r:.2f}" for r in intervention_over_time)),
        ("environment steps", str(summary["env_steps"])),
        ("critic updates", f"{summary['updates']} ({summary['utd_achieved']:.2f} per environment step)"),
        ("wall time", f"{summary['wall_s'] / 60:.1f} min"),
    ]:
        table.add_row(label, value)
    console.print(table)
