"""`tether eval`: run a trained policy checkpoint in the twin and report success."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import typer

from tether.config import DEFAULT_RIG

log = logging.getLogger(__name__)

CONTACT_SHEET = "contact_sheet.png"


def contact_sheet(frames: list[np.ndarray], path: Path, columns: int = 8, max_frames: int = 32) -> Path:
    """A grid of evenly spaced frames of one episode, first to last, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int))
    rows = int(np.ceil(len(picks) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.6 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, picks):
        axis.imshow(frames[index])
        axis.set_title(f"t={index}", fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def eval_command(
    policy: Path = typer.Option(..., "--policy", help="SAC or diffusion checkpoint folder (model + config.json)."),
    task: str = typer.Option("pick_cube", "--task", "-t", help="Twin task: pick_cube or peg_insert."),
    episodes: int = typer.Option(20, "--episodes", "-n", min=1, help="Episodes to run."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the results here as JSON."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first episode (episode i uses seed + i)."),
    rig: str = typer.Option(DEFAULT_RIG, "--rig", help="Rig name or YAML path."),
    sheet: Path | None = typer.Option(None, "--contact-sheet", help="PNG of the first episode (default: next to --json)."),
) -> None:
    """Evaluate a checkpoint with its deterministic policy: success rate, mean length, a contact sheet."""
    from tether.policies.checkpoint import checkpoint_kind
    from tether.policies.diffusion import CHECKPOINT_KIND as DIFFUSION
    from tether.policies.diffusion import DiffusionPolicy
    from tether.policies.diffusion_train import rollout
    from tether.policies.sac import SACAgent
    from tether.policies.sac_loop import evaluate
    from tether.sim2real.twin import make_env

    if not policy.is_dir():
        raise typer.BadParameter(f"{policy}: no such checkpoint folder", param_hint="--policy")
    try:
        agent = DiffusionPolicy.load(policy) if checkpoint_kind(policy) == DIFFUSION else SACAgent.load(policy)
    except (FileNotFoundError, ValueError) as error:
        raise typer.BadParameter(str(error), param_hint="--policy") from None
    pixels = any(k.startswith("images/") for k in agent.observation_space.spaces)
    env = make_env(task, rig=rig, obs_mode="pixels" if pixels else "state", render_mode="rgb_array")
    if env.observation_space != agent.observation_space:
        raise typer.BadParameter(f"{policy}: its observation space differs from {task}'s", param_hint="--policy")
    if isinstance(agent, DiffusionPolicy):
        result = rollout(agent, env, episodes, seed=seed, record=True)
    else:
        result = evaluate(lambda obs: agent.act(obs, deterministic=True), env, episodes, seed=seed, record=True)
    env.close()
    sheet = sheet or (json_out.with_name(json_out.stem + "_" + CONTACT_SHEET) if json_out else None)
    summary = {
        "policy": str(policy), "task": task, "episodes": episodes, "seed": seed,
        "success_rate": result.success_rate, "mean_length": result.mean_length, "mean_return": result.mean_return,
        "successes": result.successes, "lengths": result.lengths,
        "contact_sheet": str(contact_sheet(result.frames, sheet)) if sheet else None,
    }
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(summary, indent=2) + "\n")
    typer.echo(f"{task}: success {result.success_rate:.2f} over {episodes} episodes, "
               f"mean length {result.mean_length:.1f}" + (f"; wrote {json_out}" if json_out else ""))
