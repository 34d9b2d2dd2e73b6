"""`tether deploy`: run a trained checkpoint on a rig through the ROS 2 graph and measure it.

The graph is the one training and recording use, minus the learner and the human: the arm node
(with its safety layer), the cameras the policy looks at, the actor in eval mode and the
recorder, which stores every episode. Success comes from the twin on a twin rig; on a real rig
the `reach` task is judged from the measured TCP by the reach node, and a policy that observes
object poses gets them, and its success, from the mirror (the live twin placing objects from the
markers its detect camera sees); otherwise a task counts only time-outs (re-score such a store in
the twin with `tether eval --twin-replay`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer
from tqdm import tqdm

from tether import spaces
from tether.cli.eval import load_checked
from tether.cli.options import ViewOption, viewed
from tether.cli.output import ForceOption, claim_output, write_json
from tether.config import DEFAULT_RIG, RigConfig, TwinArm, load_rig, parse_rig

REACH_TARGET = spaces.STATE + "target_pos"


def policy_inputs(policy_keys: tuple[str, ...]) -> tuple[bool, list[str]]:
    """Whether a policy observing `policy_keys` looks at images, and the task-state keys it observes."""
    pixels = any(spaces.is_image_key(k) for k in policy_keys)
    return pixels, sorted(k for k in policy_keys if not spaces.is_image_key(k) and k not in spaces.PROPRIO_DIMS)


def deploy_nodes(rig: RigConfig, policy_keys: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    """The graph's nodes and observation mode for a policy observing `policy_keys` on `rig`."""
    pixels, task_keys = policy_inputs(policy_keys)
    twin = isinstance(rig.arm, TwinArm)
    judge: tuple[str, ...] = ()
    if not twin and rig.task.name == "reach":
        judge = ("reach",)
    elif not twin and task_keys:
        if not (rig.mirror.detect_camera and rig.mirror.markers):
            raise ValueError(
                f"rig '{rig.name}': the policy observes {task_keys}; on a rig with no twin they come from markers the "
                "mirror sees (set mirror.detect_camera and mirror.markers), or from the reach node for task reach"
            )
        judge = ("mirror",)  # it places the objects from the detect camera, so the cameras run
    nodes = ("twin",) if twin else ()
    nodes += ("arm",) + (("cameras",) if pixels or judge == ("mirror",) else ()) + ("actor", "recorder") + judge
    return nodes, "pixels" if pixels else "state"


def tracking_summary(errors: list[float]) -> dict[str, float | None]:
    """The arm's lag behind its commanded targets (mm)."""
    if not errors:
        return {"tracking_mean_mm": None, "tracking_p95_mm": None, "tracking_max_mm": None}
    values = 1000.0 * np.asarray(errors)
    return {
        "tracking_mean_mm": float(values.mean()), "tracking_p95_mm": float(np.percentile(values, 95)),
        "tracking_max_mm": float(values.max()),
    }


def final_reach_distances(store: Path, first_episode: int) -> list[float]:
    """Distance (m) from the TCP to the target at the end of each recorded episode, if the store has targets."""
    from tether.datasets.store import EpisodeStore

    if not (store / "zarr.json").exists():  # stopped before any episode was committed
        return []
    episodes = EpisodeStore(store)
    if REACH_TARGET not in episodes.spec.obs:
        return []
    tcp, target = episodes.final_obs(spaces.TCP_POSE), episodes.final_obs(REACH_TARGET)
    return [float(d) for d in np.linalg.norm(tcp[first_episode:, :3] - target[first_episode:], axis=1)]


def run_deploy(
    policy: Path, rig: RigConfig, episodes: int, out: Path, *, seed: int = 0, time_scale: float = 1.0,
    timeout_s: float | None = None, progress: bool = True, view: str | None = None,
) -> dict:
    """Run `episodes` episodes of a checkpoint (or a run's) on a rig; returns success and tracking figures."""
    from tether.cli.robot import _stop_event
    from tether.datasets.store import EpisodeStore
    from tether.policies.registry import find_checkpoint
    from tether.robot_ws.graph import Graph, GraphSpec

    policy = find_checkpoint(policy)
    loaded = load_checked(policy)
    loaded.close()
    nodes, obs_mode = deploy_nodes(rig, loaded.observation_keys)
    before = EpisodeStore(out).n_episodes if (out / "zarr.json").exists() else 0
    spec = GraphSpec(
        rig=rig, nodes=viewed(nodes, view), obs_mode=obs_mode, policy=policy, actor_mode="eval", store=out,
        source="policy", max_episodes=episodes, time_scale=time_scale, seed=seed, view=view,
    )
    stop = _stop_event()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with Graph(spec) as graph, tqdm(total=episodes, desc="deploy", unit="episode", disable=not progress) as bar:
        recorder = graph.node("recorder")
        while recorder.committed + recorder.discarded < episodes and not stop.is_set():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"deploy on rig '{rig.name}': {recorder.committed} of {episodes} episodes in {timeout_s} s")
            graph.wait(lambda: recorder.committed != bar.n or stop.is_set(), timeout_s=1.0)
            bar.update(recorder.committed - bar.n)
    actor = graph.node("actor")
    results = actor.episode_results[:episodes]
    return {
        "policy": str(policy), "rig": rig.name, "task": rig.task.name, "episodes": len(results), "store": str(out),
        "success_rate": float(np.mean([r["success"] for r in results])) if results else 0.0,
        "mean_length": float(np.mean([r["length"] for r in results])) if results else 0.0,
        "outcomes": [r["outcome"] for r in results],
        # A chunked policy infers in the background; a tick that found no action ready sent a hold.
        "starved_ticks": getattr(getattr(actor.policy, "controller", None), "starved", None),
        "steps": actor.counters["steps"],
        **tracking_summary(list(graph.node("arm").tracking_errors)),
        "final_target_distance_m": final_reach_distances(out, before),
    }


def deploy(
    policy: Path = typer.Option(..., "--policy", help="Checkpoint (model + config.json) or run folder of any policy kind."),
    rig: str = typer.Option(DEFAULT_RIG, "--rig", help="Rig name (hardware_configs/<name>.yaml) or a YAML path."),
    episodes: int = typer.Option(10, "--episodes", "-n", min=1, help="Episodes to run."),
    out: Path = typer.Option(Path("runs/deploy/episodes.zarr"), "--out", help="Episode store the runs are recorded into (appended to if it exists)."),
    task: str | None = typer.Option(None, "--task", "-t", help="Task to run instead of the rig's (e.g. reach)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the figures here as JSON."),
    seed: int = typer.Option(0, "--seed", help="Seed of the twin's scenes / the reach targets."),
    time_scale: float = typer.Option(1.0, "--time-scale", min=0.1, max=20.0, help="Twin rigs: run the twin this many times faster than real time."),
    view: str | None = ViewOption,
    force: bool = ForceOption,
) -> None:
    """Run a checkpoint on a rig (arm safety layer, eval actor, recorder) and report success and tracking."""
    claim_output(json_out, "--json", force=force)
    load_checked(policy).close()  # a damaged or foreign checkpoint fails here, before the graph starts or the store is touched
    config = load_rig(rig)
    if task is not None:
        data = config.model_dump(mode="json")
        config = parse_rig({**data, "task": {**data["task"], "name": task}}, f"rig '{config.name}' with --task {task}")
    try:
        summary = run_deploy(policy, config, episodes, out, seed=seed, time_scale=time_scale, view=view)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--policy") from None
    write_json(json_out, summary)
    tracking = summary["tracking_mean_mm"]
    typer.echo(
        f"{summary['task']} on {summary['rig']}: success {summary['success_rate']:.2f} over {summary['episodes']} episodes"
        + (f", tracking error {tracking:.1f} mm mean" if tracking is not None else "") + f"; recorded in {out}"
    )
    if summary["starved_ticks"]:
        typer.echo(f"warning: {summary['starved_ticks']} of {summary['steps']} ticks held because the policy's next "
                   "chunk was not ready (inference slower than the chunk's prefetch); success suffers", err=True)
