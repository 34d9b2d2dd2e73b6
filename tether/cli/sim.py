"""`tether sim ...`: twin tools (scripted operator runs, env checks)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import typer
from tqdm import tqdm

from tether.cli.options import TaskOption, known_obs, rig_task
from tether.cli.output import ForceOption, claim_output, write_json
from tether.config import DEFAULT_RIG
from tether.datasets.gym_recorder import StoreRecorder

app = typer.Typer(help="Twin tools: run the scripted operator, check envs.", no_args_is_help=True)
log = logging.getLogger(__name__)

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
    task: str | None = TaskOption,
    rig: str = RigOption,
    episodes: int = typer.Option(100, "--episodes", "-n", min=1, help="Episodes to run."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first episode (episode i uses seed + i)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the summary here as JSON."),
    out: Path | None = typer.Option(
        None, "--out", help="Record the episodes (state, task state and camera images) into this store (appended to if it exists)."
    ),
    force: bool = ForceOption,
) -> None:
    """Run the scripted operator in the twin and report its success rate."""
    claim_output(json_out, "--json", force=force)
    task = rig_task(task, rig)
    summary = run_expert(task, rig, episodes, seed, out)
    typer.echo(
        f"{task}: success {summary['success_rate']:.2f} over {episodes} episodes, "
        f"mean length {summary['mean_length']:.1f} steps"
    )
    write_json(json_out, summary)


@app.command()
def check(
    task: str | None = TaskOption,
    rig: str = RigOption,
    obs: str = typer.Option("state", "--obs", help="Observation mode: state or pixels.", callback=known_obs),
) -> None:
    """Print a twin task's spaces and run gymnasium's env checker on it."""
    from gymnasium.utils.env_checker import check_env

    from tether.sim2real.twin import make_env

    task = rig_task(task, rig)
    env = make_env(task, rig=rig, obs_mode=obs)
    typer.echo(f"task {task} on rig {env.unwrapped.rig.name} ({obs})")
    typer.echo(f"action space: {env.action_space}")
    for key, space in env.observation_space.spaces.items():
        typer.echo(f"  {key}: {space.dtype} {space.shape}")
    check_env(env.unwrapped, skip_render_check=True)
    env.close()
    typer.echo("check_env: passed")


def _one_line(error: Exception) -> typer.Exit:
    """Bad input ends a command with one line on stderr and exit code 2."""
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(2)


@app.command()
def excite(
    rig: str = RigOption,
    out: Path = typer.Option(..., "--out", help="Log store to record into (appended to if it exists)."),
    seconds: float = typer.Option(60.0, "--seconds", min=10.0, help="Length of each excitation run."),
    episodes: int = typer.Option(1, "--episodes", "-n", min=1, help="Runs, each from the home pose."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first run's plan (run i uses seed + i)."),
) -> None:
    """Drive the rig's arm through a safe, rich motion inside its workspace box and log it for `tether sim sysid`."""
    from tether.config import ConfigError, TwinArm, load_rig
    from tether.datasets.store import StoreError

    try:
        rig_config = load_rig(rig)
        if isinstance(rig_config.arm, TwinArm):
            episodes_done = _excite_twin(rig_config, out, seconds, episodes, seed)
        else:
            episodes_done = _excite_hardware(rig_config, out, seconds, episodes, seed)
    except (ConfigError, StoreError, ValueError) as error:
        raise _one_line(error) from None
    steps = sum(len(e) for e in episodes_done)
    typer.echo(f"excitation: {len(episodes_done)} run(s), {steps} steps on rig {rig_config.name}; wrote {out}")


def _excite_twin(rig, out: Path, seconds: float, episodes: int, seed: int) -> list:
    from tether.sim2real.excitation import record_excitation
    from tether.sim2real.stepped_twin import SteppedTwinArm, nominal_twin

    sim = nominal_twin(rig)

    def next_arm() -> SteppedTwinArm:
        sim.reset(np.random.default_rng(seed))
        return SteppedTwinArm(sim)

    try:
        return record_excitation(next_arm, rig, out, seconds=seconds, episodes=episodes, seed=seed, source="sim")
    finally:
        sim.close()


def _excite_hardware(rig, out: Path, seconds: float, episodes: int, seed: int) -> list:
    from tether.robot_ws.drivers import make_arm
    from tether.robot_ws.paced_arm import PacedArm
    from tether.sim2real.excitation import record_excitation

    with make_arm(rig) as backend:

        def next_arm() -> PacedArm:
            backend.home()
            return PacedArm(backend, rig.control_dt)

        return record_excitation(next_arm, rig, out, seconds=seconds, episodes=episodes, seed=seed, source="scripted")


@app.command()
def sysid(
    log_store: Path = typer.Option(..., "--log", help="Log store from `tether sim excite` (twin or hardware)."),
    rig: str = RigOption,
    out: Path | None = typer.Option(None, "--out", help="Rig YAML to write (default: <rig>_identified.yaml here)."),
    method: str = typer.Option("lsq", "--method", help="lsq (scipy least squares) or cma (CMA-ES)."),
    params: str = typer.Option(
        "joint_damping,joint_armature,joint_friction,stiffness_scale,damping_ratio", "--params",
        help="Comma-separated twin_dynamics fields to fit (command latency is always searched).",
    ),
    max_latency: int = typer.Option(3, "--max-latency", min=0, max=10, help="Largest command latency tried (steps)."),
    max_evals: int = typer.Option(200, "--max-evals", min=1, help="Replays the continuous fit may spend."),
    segment_steps: int = typer.Option(20, "--segment-steps", min=2, help="Control periods per replayed segment."),
    joint_weight: float = typer.Option(
        0.3, "--joint-weight", min=0.0, help="Metres of TCP error one radian of joint error counts as (0: TCP only)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of CMA-ES."),
    json_out: Path | None = typer.Option(None, "--json", help="Report as JSON (default: next to --out)."),
    force: bool = ForceOption,
) -> None:
    """Fit the twin's dynamics to a logged arm motion; write them into a copy of the rig and report
    trajectory errors before and after on held-out segments."""
    from tether.config import ConfigError, load_rig
    from tether.sim2real.arm_log import LogError, load_log
    from tether.sim2real.sysid import SysidConfig, error_table, identify, write_fitted_rig

    try:
        if method not in ("lsq", "cma"):
            raise ValueError(f"--method '{method}': must be lsq or cma")
        config = SysidConfig(
            params=tuple(p.strip() for p in params.split(",") if p.strip()), method=method,
            max_latency=max_latency, max_evals=max_evals, segment_steps=segment_steps, seed=seed,
            joint_weight=joint_weight,
        )
        rig_config = load_rig(rig)
        out = out or Path(f"{rig_config.name}_identified.yaml")
        json_out = json_out or out.with_name(out.stem + "_sysid.json")
        claim_output(out, "--out", force=force)
        claim_output(json_out, "--json", force=force)
        episodes = load_log(log_store, rig_config.arm.control_rate_hz)
        result = identify(rig_config, episodes, config)
    except (ConfigError, LogError, ValueError) as error:
        raise _one_line(error) from None
    write_fitted_rig(rig, result.fitted, out)
    report = {"log": str(log_store), "rig": rig_config.name, "out": str(out), **result.as_dict(config)}
    write_json(json_out, report)
    fitted = ", ".join(f"{k} {v:.4g}" for k, v in result.fitted.model_dump().items() if v is not None)
    typer.echo(f"fitted ({method}, {result.evaluations} replays, {result.seconds:.1f} s): {fitted}")
    typer.echo(error_table(result))
    typer.echo(f"wrote {out} and {json_out}")
