"""`tether eval`: run a trained policy checkpoint in the twin and report success; or, with --gap, the sim-vs-rig gap."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import typer

from tether.cli.options import TaskOption, rig_task
from tether.cli.output import ForceOption, claim_output, write_json
from tether.config import DEFAULT_RIG

if TYPE_CHECKING:
    from tether.policies.registry import Policy
    from tether.policies.sac_loop import EvalResult

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


def gap_command(rig: str, log_store: Path, json_out: Path | None) -> None:
    """Replay a log's command sequences on the twin of `rig`; report TCP divergence per episode and overall."""
    from tether.config import ConfigError, load_rig
    from tether.sim2real.arm_log import LogError, load_log
    from tether.sim2real.command_replay import gap_report
    from tether.sim2real.stepped_twin import nominal_twin

    try:
        rig_config = load_rig(rig)
        episodes = load_log(log_store, rig_config.arm.control_rate_hz)
        sim = nominal_twin(rig_config)
    except (ConfigError, LogError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    report = {"log": str(log_store), **gap_report(rig_config, episodes, sim)}
    sim.close()
    typer.echo("| episode | steps | TCP RMS (mm) | TCP final (mm) | TCP max (mm) | joint RMS (mrad) |")
    typer.echo("|---|---|---|---|---|---|")
    for row in report["episodes"]:
        typer.echo(f"| {row['episode']} | {row['steps']} | {row['tcp_rms_m'] * 1e3:.3f} | {row['tcp_final_m'] * 1e3:.3f} "
                   f"| {row['tcp_max_m'] * 1e3:.3f} | {row['joint_rms_rad'] * 1e3:.3f} |")
    overall = report["overall"]
    typer.echo(f"overall: TCP RMS {overall['tcp_rms_m'] * 1e3:.3f} mm, mean final {overall['tcp_final_mean_m'] * 1e3:.3f} mm "
               f"over {overall['episodes']} episode(s) on twin rig {rig_config.name}")
    write_json(json_out, report)


def load_checked(policy: Path, **options: Any) -> Policy:
    """`load_policy` for a command's --policy (a checkpoint or run folder): anything that cannot act is a bad
    --policy, one line naming it and the reason."""
    from tether.policies.registry import load_policy

    try:
        return load_policy(policy, **options)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--policy") from None


def evaluate_checkpoint(policy: Path, task: str, episodes: int, *, seed: int = 0, rig: str = DEFAULT_RIG,
                        record: bool = False, sampler_steps: int | None = None, progress: bool = False) -> EvalResult:
    """Episodes seed, seed + 1, ... of the checkpoint's deterministic policy in the twin, whatever its kind
    (chunked policies run synchronously; a diffusion policy with `sampler_steps` if given). Bad checkpoints
    raise BadParameter."""
    import gymnasium as gym

    from tether.policies.registry import ResetOnEpisode
    from tether.policies.sac import space_to_json
    from tether.policies.sac_loop import evaluate
    from tether.sim2real.twin import make_env

    loaded = load_checked(policy, deterministic=True, sampler_steps=sampler_steps)
    pixels = any(k.startswith("images/") for k in loaded.observation_keys)
    env = make_env(task, rig=rig, obs_mode="pixels" if pixels else "state", render_mode="rgb_array")
    try:
        provided = {k: v for k, v in env.observation_space.spaces.items() if k in loaded.observation_space.spaces}
        if space_to_json(gym.spaces.Dict(provided)) != space_to_json(loaded.observation_space):  # no bounds kept
            raise typer.BadParameter(f"{policy}: its observation space differs from {task}'s", param_hint="--policy")
        return evaluate(loaded.act, ResetOnEpisode(env, loaded), episodes, seed=seed, record=record, progress=progress)
    finally:
        env.close()
        loaded.close()


def eval_command(
    policy: Path | None = typer.Option(None, "--policy", help="Checkpoint or run folder: SAC (plain, residual or "
                                       "noise-steered on its frozen diffusion base) or diffusion."),
    task: str | None = TaskOption,
    episodes: int = typer.Option(20, "--episodes", "-n", min=1, help="Episodes to run."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the results here as JSON."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first episode (episode i uses seed + i)."),
    rig: str = typer.Option(DEFAULT_RIG, "--rig", help="Rig name or YAML path."),
    sheet: Path | None = typer.Option(None, "--contact-sheet", help="PNG of the first episode (default: next to --json)."),
    sampler_steps: int | None = typer.Option(None, "--sampler-steps", min=1, help="Diffusion: sampler steps per chunk instead of the checkpoint's (DDIM or Euler)."),
    gap: bool = typer.Option(False, "--gap", help="Instead: replay --log's commands on the twin of --rig, report divergence."),
    log_store: Path | None = typer.Option(None, "--log", help="With --gap: log store from `tether sim excite`."),
    twin_replay: Path | None = typer.Option(
        None, "--twin-replay", help="Instead: act on twin renders of this store's logged episodes (rig: --rig, else the store's)."
    ),
    force: bool = ForceOption,
) -> None:
    """Evaluate a checkpoint with its deterministic policy: success rate, mean length, a contact sheet.
    With --gap: how far the twin's replay of a logged command sequence drifts from the log."""
    claim_output(json_out, "--json", force=force)
    if gap:
        if log_store is None:
            raise typer.BadParameter("--gap needs --log STORE", param_hint="--log")
        gap_command(rig, log_store, json_out)
        return
    if policy is None:
        raise typer.BadParameter("give a checkpoint folder (or --gap --log STORE)", param_hint="--policy")
    if twin_replay is not None:
        from tether.cli.twin_replay import twin_replay_command

        rig_given = rig if rig != DEFAULT_RIG else None
        twin_replay_command(policy, twin_replay, rig_given, episodes, json_out)
        return
    sheet = sheet or (json_out.with_name(json_out.stem + "_" + CONTACT_SHEET) if json_out else None)
    claim_output(sheet, "--contact-sheet", force=force)
    task = rig_task(task, rig)
    result = evaluate_checkpoint(policy, task, episodes, seed=seed, rig=rig, record=True, sampler_steps=sampler_steps,
                                 progress=True)
    summary = {
        "policy": str(policy), "task": task, "episodes": episodes, "seed": seed, "sampler_steps": sampler_steps,
        "success_rate": result.success_rate, "mean_length": result.mean_length, "mean_return": result.mean_return,
        "successes": result.successes, "lengths": result.lengths,
        "contact_sheet": str(contact_sheet(result.frames, sheet)) if sheet else None,
    }
    write_json(json_out, summary)
    typer.echo(f"{task}: success {result.success_rate:.2f} over {episodes} episodes, "
               f"mean length {result.mean_length:.1f}" + (f"; wrote {json_out}" if json_out else ""))
