"""`tether sim ...`: twin tools (scripted operator runs, env checks)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import typer
from tqdm import tqdm

from tether.config import DEFAULT_RIG
from tether.datasets.gym_recorder import StoreRecorder

app = typer.Typer(help="Twin tools: run the scripted operator, check envs.", no_args_is_help=True)
log = logging.getLogger(__name__)

TaskOption = typer.Option("pick_cube", "--task", "-t", help="Twin task: pick_cube or peg_insert.")
RigOption = typer.Option(DEFAULT_RIG, "--rig", help="Rig name (hardware_configs/<name>.yaml) or a YAML path.")


def run_expert(task: str, rig: str, episodes: int, seed: int, out: Path | None = None) -> dict:
    """Roll out the scripted operator (recording into the store `out` if given); returns the summary."""
    from tether.sim2real.twin import make_env
    from tether.sim2real.twin.expert import ScriptedOperator, run_episode

    env = make_env(task, rig=rig, obs_mode="all" if out is not None else "state")
    operator = ScriptedOperator(env.unwrapped.rig.teleop.scripted, seed=seed)
    recorder = None if out is None else StoreRecorder(env, out, source="scripted", task=task)
    results = []
    for i in tqdm(range(episodes), desc=f"expert {task}"):
        results.append(run_episode(env, operator, seed=seed + i, recorder=recorder))
    if recorder is not None:
        recorder.close()
    env.close()
    successes = [success for success, _ in results]
    return {
        "task": task,
        "rig": str(rig),
        "seed": seed,
        "episodes": episodes,
        "success_rate": float(np.mean(successes)),
        "mean_length": float(np.mean([length for _, length in results])),
        "failed_seeds": [seed + i for i, success in enumerate(successes) if not success],
    }


@app.command()
def expert(
    task: str = TaskOption,
    rig: str = RigOption,
    episodes: int = typer.Option(100, "--episodes", "-n", min=1, help="Episodes to run."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first episode (episode i uses seed + i)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the summary here as JSON."),
    out: Path | None = typer.Option(
        None, "--out", help="Record the episodes (state, task state and camera images) into this store."
    ),
) -> None:
    """Run the scripted operator in the twin and report its success rate."""
    summary = run_expert(task, rig, episodes, seed, out)
    typer.echo(
        f"{task}: success {summary['success_rate']:.2f} over {episodes} episodes, "
        f"mean length {summary['mean_length']:.1f} steps"
    )
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(summary, indent=2))


@app.command()
def check(
    task: str = TaskOption,
    rig: str = RigOption,
    obs: str = typer.Option("state", "--obs", help="Observation mode: state or pixels."),
) -> None:
    """Print a twin task's spaces and run gymnasium's env checker on it."""
    from gymnasium.utils.env_checker import check_env

    from tether.sim2real.twin import make_env

    env = make_env(task, rig=rig, obs_mode=obs)
    typer.echo(f"task {task} on rig {env.unwrapped.rig.name} ({obs})")
    typer.echo(f"action space: {env.action_space}")
    for key, space in env.observation_space.spaces.items():
        typer.echo(f"  {key}: {space.dtype} {space.shape}")
    check_env(env.unwrapped, skip_render_check=True)
    env.close()
    typer.echo("check_env: passed")
