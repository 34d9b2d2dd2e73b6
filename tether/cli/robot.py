"""`tether up`, `tether node`, `tether record`, `tether train hil`: the ROS 2 graph from the command line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer
from tqdm import tqdm

from tether.cli.options import ViewOption, known_obs, viewed
from tether.cli.output import claim_output
from tether.config import DEFAULT_RIG, load_rig

if TYPE_CHECKING:
    from tether.policies.steering import Steering
    from tether.robot_ws.graph import GraphSpec

RigOption = typer.Option(DEFAULT_RIG, "--rig", help="Rig name (hardware_configs/<name>.yaml) or a YAML path.")
TimeScaleOption = typer.Option(
    1.0, "--time-scale", min=0.1, max=20.0, help="Twin rigs: run the twin this many times faster than real time (sim time on /clock)."
)
SeedOption = typer.Option(0, "--seed", help="Seed of the twin's scenes, the operator and the learner.")
BasePolicyOption = typer.Option(
    None, "--base-policy", help="A diffusion checkpoint the SAC policy corrects with a bounded residual (frozen)."
)
LearnerLoss = Literal["act", "hold"]
"""What the actor does while a dead learner restarts (`tether train hil --on-learner-loss`)."""
ResidualScaleOption = typer.Option(
    0.2, "--residual-scale", min=0.01, max=2.0, help="With --base-policy: the residual's bound per action dimension."
)


def _residual_steering(base_policy: Path | None, scale: float) -> Steering | None:
    """--base-policy as residual steering; the checkpoint must be a diffusion policy."""
    if base_policy is None:
        return None
    from tether.policies.checkpoint import checkpoint_kind
    from tether.policies.diffusion import CHECKPOINT_KIND as DIFFUSION
    from tether.policies.steering import Steering

    try:
        kind = checkpoint_kind(base_policy)
    except (FileNotFoundError, ValueError) as error:
        raise typer.BadParameter(str(error), param_hint="--base-policy") from None
    if kind != DIFFUSION:
        raise typer.BadParameter(f"{base_policy}: a '{kind}' checkpoint, not a diffusion policy", param_hint="--base-policy")
    return Steering(base=base_policy, steer="residual", scale=scale)


def _graph_spec(**fields: Any) -> GraphSpec:
    """A GraphSpec from command-line choices; the nodes or modes it cannot run are bad arguments."""
    from tether.robot_ws.graph import GraphSpec

    try:
        return GraphSpec(**fields)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--nodes") from None


def _stop_event() -> threading.Event:
    """Set on SIGINT / SIGTERM, so every command shuts its graph down in the safe order."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def record_demos(
    rig_name: str, out: Path, episodes: int, *, seed: int, time_scale: float, progress: bool = True,
    view: str | None = None, bag: Path | None = None,
) -> dict:
    """Teleoperated (on the twin: scripted) episodes through the graph into a store (and, with `bag`, the graph's
    topics into an MCAP file); returns counts."""
    from tether.robot_ws.graph import Graph, GraphSpec

    rig = load_rig(rig_name)
    nodes = ("arm", "cameras", "teleop", "actor", "recorder")
    if rig.arm.backend == "twin":
        nodes = ("twin", *nodes)
    if bag is not None:
        nodes = (*nodes, "bag")
    spec = GraphSpec(
        rig=rig, nodes=viewed(nodes, view),
        obs_mode="all", actor_mode="teleop", operator="always", store=out, source="teleop" if rig.teleop.device != "scripted" else "scripted",
        max_episodes=None, time_scale=time_scale, seed=seed, view=view, bag=bag,
    )
    stop = _stop_event()
    with Graph(spec) as graph, tqdm(total=episodes, desc="record", unit="episode", disable=not progress) as bar:
        recorder = graph.node("recorder")
        seen = 0
        while recorder.committed + recorder.discarded < episodes and not stop.is_set() and recorder.failed is None:
            graph.wait(lambda: recorder.committed != seen or stop.is_set() or recorder.failed is not None, timeout_s=1.0)
            bar.update(recorder.committed - seen)
            seen = recorder.committed
        committed = recorder.committed
    if recorder.failed is not None:  # the graph is down (arm held, nodes closed); the committed episodes are intact
        raise recorder.failed
    results = graph.node("actor").episode_results
    return {"episodes": committed, "successes": sum(r["success"] for r in results[:committed]), "store": str(out)}


def record(
    out: Path = typer.Option(..., "--out", help="Episode store (zarr) to create or append to."),
    episodes: int = typer.Option(10, "--episodes", "-n", min=1, help="Episodes to record."),
    rig: str = RigOption,
    seed: int = SeedOption,
    time_scale: float = TimeScaleOption,
    view: str | None = ViewOption,
    bag: Path | None = typer.Option(None, "--bag", help="Also record the graph's topics into this MCAP file "
                                    "(a ROS 2 bag; `tether data convert` imports it)."),
) -> None:
    """Record teleoperated demonstrations (on the twin, by the scripted operator) into a store."""
    summary = record_demos(rig, out, episodes, seed=seed, time_scale=time_scale, view=view, bag=bag)
    typer.echo(json.dumps(summary))


def train_hil(
    out: Path = typer.Option(Path("runs/hil"), "--out", help="Run folder: checkpoint, buffers, episodes."),
    demos: Path | None = typer.Option(None, "--demos", help="Episode store whose episodes seed the demo buffer."),
    steps: int = typer.Option(3000, "--steps", min=1, help="Environment steps to train for."),
    obs: str = typer.Option("state", "--obs", help="state (twin task state) or pixels.", callback=known_obs),
    config: Path | None = typer.Option(None, "--config", help="YAML with sac: / loop: sections for the learner."),
    base_policy: Path | None = BasePolicyOption,
    residual_scale: float = ResidualScaleOption,
    on_learner_loss: LearnerLoss = typer.Option(
        "act", "--on-learner-loss",
        help="While a dead learner restarts: act (keep acting with the last weights) or hold (end the episode, hold still).",
    ),
    learner_restarts: int = typer.Option(
        5, "--learner-restarts", min=0, help="Restarts of a dying learner (back-off 1 s, doubling) before giving up."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out: its learner checkpoint and buffers, and append to its episodes."
    ),
    rig: str = RigOption,
    seed: int = SeedOption,
    time_scale: float = TimeScaleOption,
    view: str | None = ViewOption,
) -> None:
    """Human-in-the-loop SAC through the graph: actor + learner + recorder + teleop (+ the twin).

    With --base-policy, SAC learns a bounded residual on top of a frozen diffusion policy (the base acts,
    the residual corrects it, the operator's takeovers become residual targets). A learner that dies is
    restarted from its last checkpoint while the robot side runs on."""
    from tether.cli.learner_supervisor import LearnerGaveUp
    from tether.cli.train import learner_configs

    learner_configs(config)  # a bad --config is the user's error here, not a learner that dies after start
    claim_output(out, "--out", force=False, resuming=resume, remedy="give --resume to continue that run")
    try:
        summary = run_hil(rig, out, demos, steps, obs=obs, config=config, seed=seed, time_scale=time_scale,
                          steering=_residual_steering(base_policy, residual_scale), on_learner_loss=on_learner_loss,
                          max_learner_restarts=learner_restarts, view=view)
    except LearnerGaveUp as gave_up:
        typer.echo(json.dumps(gave_up.summary, indent=2))
        typer.echo(f"error: {gave_up}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(summary, indent=2))


def learner_process(rig_name: str, run_dir: Path, demos: Path | None, *, obs: str, seed: int, time_scale: float,
                    config: Path | None = None, utd: int | None = None, checkpoint_every: int | None = None,
                    steering: Steering | None = None) -> subprocess.Popen:
    """The learner in a process of its own, so its updates never wait on the control loop's threads."""
    command = [
        sys.executable, "-m", "tether.cli", "node", "learner", "--rig", rig_name, "--out", str(run_dir),
        "--obs", obs, "--seed", str(seed), "--time-scale", str(time_scale),
    ]
    if steering is not None:
        command += ["--base-policy", str(steering.base), "--residual-scale", str(steering.scale)]
    for flag, value in (("--demos", demos), ("--config", config), ("--utd", utd), ("--checkpoint-every", checkpoint_every)):
        if value is not None:
            command += [flag, str(value)]
    run_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(run_dir / "learner.log", "ab")  # noqa: SIM115 - the child owns it for its lifetime
    return subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)


LEARNER_STOP_S = 600.0
"""How long a stopping learner may take to write its last checkpoint (buffers included) before SIGKILL:
saving the buffers costs about 75 ms per stored run, so 4k HIL transitions in ~700 runs take about a minute."""


def stop_process(process: subprocess.Popen, timeout_s: float = LEARNER_STOP_S) -> int:
    """SIGTERM (the node checkpoints and exits), SIGKILL if it does not."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def run_hil(
    rig_name: str, out: Path, demos: Path | None, steps: int, *, obs: str, config: Path | None, seed: int,
    time_scale: float, progress: bool = True, steering: Steering | None = None, on_learner_loss: LearnerLoss = "act",
    max_learner_restarts: int = 5, view: str | None = None,
) -> dict:
    """HIL training through the graph: learner in its own process (restarted if it dies), everything else in
    this one. The summary counts `learner_restarts`; each death is in `learner_losses` with the actor's
    transitions and the recorder's committed episodes at that moment. A learner given up on raises
    LearnerGaveUp (with the summary, `error` in it) once the graph has stopped safely."""
    from tether.cli.learner_supervisor import LearnerGaveUp, LearnerSupervisor
    from tether.robot_ws.graph import Graph, GraphSpec
    from tether.robot_ws.nodes.learner import STATS

    rig = load_rig(rig_name)
    twin = rig.arm.backend == "twin"
    nodes = ("twin",) if twin else ()
    nodes += ("arm", "cameras", "teleop", "actor", "recorder") if obs == "pixels" else ("arm", "teleop", "actor", "recorder")
    spec = GraphSpec(
        rig=rig, nodes=viewed(nodes, view), obs_mode=obs, actor_mode="hil", operator="takeover",
        store=out / "episodes.zarr", source="hil", time_scale=time_scale, seed=seed, steering=steering, view=view,
    )
    stop = _stop_event()
    learner = LearnerSupervisor(
        lambda: learner_process(rig_name, out, demos, obs=obs, seed=seed, time_scale=time_scale, config=config,
                                steering=steering),
        out, max_restarts=max_learner_restarts,
    )
    losses: list[dict] = []
    try:
        with Graph(spec) as graph, tqdm(total=steps, desc="train hil", unit="step", disable=not progress) as bar:
            actor, recorder = graph.node("actor"), graph.node("recorder")
            while actor.counters["transitions"] < steps and not stop.is_set() and not learner.gave_up:
                code = learner.check(may_restart=actor.weights_version >= 0)
                if code is not None:  # the process monitor is in this process: tell the actor at once
                    actor.learner_lost(hold=on_learner_loss == "hold")
                    losses.append({"exit": code, "transitions": actor.counters["transitions"],
                                   "episodes_committed": recorder.committed})
                graph.wait(stop.is_set, timeout_s=0.5)
                bar.n = min(actor.counters["transitions"], steps)
                bar.set_postfix(weights=actor.weights_version, learner_restarts=learner.restarts, refresh=False)
                bar.refresh()
    finally:
        learner.stop(stop_process)
    stats = json.loads((out / STATS).read_text()) if (out / STATS).exists() else {}
    summary = {"learner": stats, "episodes": actor.episode_results, "transitions": actor.counters["transitions"],
               "learner_restarts": learner.restarts, "learner_losses": losses, "run_dir": str(out)}
    if learner.error:
        raise LearnerGaveUp(learner.error, summary | {"error": learner.error})
    return summary


def up(
    rig: str = RigOption,
    nodes: list[str] | None = typer.Option(None, "--nodes", help="Nodes to run (default: all). Repeat the option."),
    out: Path = typer.Option(Path("runs/up"), "--out", help="Run folder for the learner and the recorder's store (continued and appended to if it exists)."),
    obs: str = typer.Option("state", "--obs", help="Policy observation: state or pixels.", callback=known_obs),
    seed: int = SeedOption,
    time_scale: float = TimeScaleOption,
) -> None:
    """Run the graph (or the given nodes) in one process until Ctrl-C."""
    from tether.robot_ws.graph import Graph, parse_nodes

    rig_config = load_rig(rig)
    chosen = parse_nodes(nodes)
    if not nodes and rig_config.arm.backend != "twin":  # a hardware rig's arm and cameras are the real ones
        chosen = tuple(n for n in chosen if n != "twin")
    spec = _graph_spec(
        rig=rig_config, nodes=chosen, obs_mode=obs, store=out / "episodes.zarr", run_dir=out,
        time_scale=time_scale, seed=seed,
    )
    stop = _stop_event()
    with Graph(spec) as graph:
        typer.echo(f"graph up: {', '.join(graph.nodes)} (Ctrl-C to stop)")
        graph.wait(stop.is_set)
    typer.echo("graph down")


def node(
    name: str = typer.Argument(..., help="twin (with the arm, cameras and teleop of a twin rig), arm, cameras, teleop, actor, learner, recorder or mirror (the live twin of a real arm)."),
    rig: str = RigOption,
    out: Path = typer.Option(Path("runs/up"), "--out", help="Run folder for the learner and the recorder's store (continued and appended to if it exists)."),
    obs: str = typer.Option("state", "--obs", help="Policy observation: state or pixels.", callback=known_obs),
    demos: Path | None = typer.Option(None, "--demos", help="Learner: episode store whose episodes seed the demo buffer."),
    config: Path | None = typer.Option(None, "--config", help="Learner: YAML with sac: / loop: sections."),
    utd: int | None = typer.Option(None, "--utd", min=1, help="Learner: critic updates per environment step (overrides --config)."),
    checkpoint_every: int | None = typer.Option(None, "--checkpoint-every", min=1, help="Learner: env steps between checkpoints (overrides --config)."),
    base_policy: Path | None = BasePolicyOption,
    residual_scale: float = ResidualScaleOption,
    seed: int = SeedOption,
    time_scale: float = TimeScaleOption,
) -> None:
    """Run one node in this process (another process or host runs the rest, same ROS_DOMAIN_ID)."""
    from tether.cli.train import learner_configs
    from tether.robot_ws.graph import Graph

    rig_config = load_rig(rig)
    sac, loop = learner_configs(config, utd=utd, checkpoint_every=checkpoint_every)
    nodes = (name,)
    if name == "learner":
        import torch

        torch.set_num_threads(1)  # one core for updates; more threads only contend with the actor's process
    if name == "twin":
        nodes = ("twin", "arm", "cameras", "teleop")
    elif rig_config.arm.backend == "twin" and name in ("arm", "cameras", "teleop"):
        raise typer.BadParameter(f"on twin rig '{rig_config.name}', '{name}' runs inside `tether node twin`")
    spec = _graph_spec(
        rig=rig_config, nodes=nodes, obs_mode=obs, store=out / "episodes.zarr", run_dir=out, demos=demos,
        time_scale=time_scale, seed=seed, steering=_residual_steering(base_policy, residual_scale),
        learner_kwargs={"sac": sac, "loop": loop},
    )
    stop = _stop_event()
    with Graph(spec) as graph:
        typer.echo(f"node up: {', '.join(graph.nodes)} (Ctrl-C to stop)", err=True)
        graph.wait(stop.is_set)
