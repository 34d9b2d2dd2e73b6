"""`tether train sim`: train in many twin instances at once, with domain randomisation and a curriculum.

The rig (a twin rig, or the twin of a hardware rig: same workspace, limits, action scale and
rate) is written into the run folder as `twin_rig.yaml` with the chosen profile's ranges, so the
run can be evaluated again on exactly that twin (`tether eval --rig OUT/twin_rig.yaml`).

- `--policy sac`: SAC on K vector envs (`tether.policies.sac_vector`), RLPD-style with scripted
  demos in the demo buffer; the curriculum widens the ranges from nominal to the profile's as
  training success rises. Writes OUT/checkpoint, OUT/curve.json|png and OUT/summary.json.
- `--policy diffusion`: the scripted operator records demos in the randomised twin into
  OUT/demos.zarr, then `tether train diffusion` trains on them into OUT/diffusion.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import typer
import yaml

from tether import spaces
from tether.cli.options import known_obs
from tether.cli.output import ForceOption, claim_output
from tether.config import DEFAULT_RIG, ConfigError, RandomizationConfig, RigConfig, load_rig
from tether.policies.learner import LoopConfig

log = logging.getLogger(__name__)

TWIN_RIG = "twin_rig.yaml"
SUMMARY_JSON = "summary.json"
DEMO_STORE = "demos.zarr"


TASK_STEPS = {"reach": 10_000}
"""Environment steps a task trains for by default (others: DEFAULT_STEPS). Reach: 5 seeds on the Franka twin
scored 1.00, 1.00, 1.00, 0.98, 1.00 over 50 episodes each, their first perfect evaluation at 3-6k steps, so 10k
leave a margin; 9-14 min a seed on 2 shared cores (benchmarks/README.md#reach_twin)."""
DEFAULT_STEPS = 20_000


def task_sac_defaults(task: str, action_dim: int) -> dict[str, Any]:
    """SAC settings a task starts from (the learner core's recipe otherwise: critic ensemble, UTD 4), under
    --debug and --config.

    Reach's action has no gripper (`tether.actions`), so no grasp critic; and a target entropy of -|A| instead
    of -|A|/2 keeps the deterministic policy, which deployment runs, as precise as the stochastic one that
    trained (at -|A|/2 the mean stopped 2-5 cm short of targets the noisy policy reached).
    """
    if task != "reach":
        return {}
    return {"grasp_critic": False, "target_entropy": -float(action_dim)}


class CurriculumListener:
    """Feeds training episodes to the curriculum and pushes each widening into every env."""

    def __init__(self, curriculum, envs) -> None:
        self.curriculum, self.envs = curriculum, envs

    def episode_end(self, success: bool, env_steps: int) -> None:
        from tether.sim2real.vector import set_ranges

        if self.curriculum.record(success, env_steps):
            set_ranges(self.envs, self.curriculum.ranges)

    def log_fields(self) -> dict[str, Any]:
        return {"randomization_scale": self.curriculum.scale,
                "curriculum_level_success": self.curriculum.success_rate}


def write_twin_rig(rig: RigConfig, ranges: RandomizationConfig, out: Path, task: str | None = None) -> Path:
    """The rig trained on, as YAML in the run folder: the twin of `rig` with the profile's ranges and, if given,
    the task trained (so eval and deploy of the run default to its task and its action layout)."""
    from tether.sim2real.twin.rig import twin_rig

    twin = twin_rig(rig).model_copy(update={"randomization": ranges})
    if task is not None:
        twin = twin.model_copy(update={"task": twin.task.model_copy(update={"name": task})})
    out.mkdir(parents=True, exist_ok=True)
    path = out / TWIN_RIG
    path.write_text(yaml.safe_dump(twin.model_dump(mode="json", exclude_none=True), sort_keys=False))
    load_rig(path)  # what was written must load back
    return path


def train_sac_in_twins(*, task: str, rig_path: Path, full: RandomizationConfig, curriculum: bool, envs_count: int,
                       steps: int, seed: int, demo_episodes: int, reward: str | None, obs: str, config: Path | None,
                       debug: bool, eval_every: int | None, out: Path) -> dict[str, Any]:
    """SAC on `envs_count` twins with the curriculum (or the full ranges throughout); returns the summary."""
    import torch

    from tether.cli.train import DEBUG_LOOP, DEBUG_SAC, _validated, read_train_file, scripted_operator
    from tether.datasets.replay import ReplayBuffer
    from tether.policies.sac import SACAgent, SACConfig
    from tether.policies.sac_loop import collect_demos, result_json
    from tether.policies.sac_vector import train_sac_vector
    from tether.sim2real.curriculum import Curriculum, CurriculumConfig
    from tether.sim2real.vector import env_seeds, make_twin_env, make_vector_env

    file = read_train_file(config)
    action_dim = spaces.action_space(load_rig(rig_path), task).shape[0]
    sac_values = {**task_sac_defaults(task, action_dim), **(DEBUG_SAC if debug else {}), **file.sac}
    loop_values = {**(DEBUG_LOOP if debug else {}), **file.loop, **({"eval_every": eval_every} if eval_every else {})}
    sac = _validated(SACConfig, sac_values, "sac")
    loop = _validated(LoopConfig, {**loop_values, "steps": steps}, "loop")
    schedule = Curriculum(full, CurriculumConfig() if curriculum else CurriculumConfig(start=1.0))
    torch.manual_seed(seed)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - envs_count))  # the learner takes the cores the workers leave
    shaping = sac.discount if reward == "shaped" else None  # shaping wraps the sparse reward
    reward = "sparse" if shaping is not None else reward
    eval_env = make_twin_env(task, rig_path, obs, reward, ranges=full, shaping_discount=shaping)
    demos = ReplayBuffer(eval_env.observation_space, action_dim, loop.buffer_capacity)
    if demo_episodes:  # demos at the curriculum's starting ranges, where the policy starts too
        demo_env = make_twin_env(task, rig_path, obs, reward, ranges=schedule.ranges, shaping_discount=shaping)
        collect_demos(demo_env, scripted_operator(demo_env, seed + 1), demo_episodes, demos, seed=2_000_000 + seed)
        demo_env.close()
        log.info("demos: %d scripted episodes, %d transitions", demo_episodes, len(demos))
    agent = SACAgent(eval_env.observation_space, action_dim, sac, seed=seed)
    envs = make_vector_env(task, rig_path, envs_count, obs_mode=obs, reward=reward, ranges=schedule.ranges,
                           shaping_discount=shaping)
    started = time.perf_counter()
    try:
        result = train_sac_vector(agent, envs, loop, seeds=env_seeds(seed, envs_count), demos=demos,
                                  eval_env=eval_env, listener=CurriculumListener(schedule, envs), out_dir=out)
    finally:
        envs.close()
        eval_env.close()
    wall = time.perf_counter() - started
    return {"demo_transitions": len(demos), "wall_s": wall, "env_steps_per_s": result.env_steps / wall,
            "curriculum": schedule.state(), "success_over_time": result.curve,
            "final_success_rate": result.curve[-1]["success_rate"] if result.curve else None, **result_json(result)}


def train_sim(
    task: str | None = typer.Option(None, "--task", "-t", help="Twin task: reach, pick_cube or peg_insert (default: the rig's)."),
    rig: str = typer.Option(DEFAULT_RIG, "--rig", help="Rig name or YAML path; a hardware rig trains in its twin."),
    randomize: str = typer.Option("light", "--randomize", help="Randomisation profile: none, light, heavy or rig."),
    steps: int | None = typer.Option(None, "--steps", min=1,
                                     help=f"Environment steps over all envs (SAC; default {TASK_STEPS} by task, "
                                          f"else {DEFAULT_STEPS})."),
    envs: int = typer.Option(os.cpu_count() or 1, "--envs", min=1, help="Twin instances in parallel (worker processes)."),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("runs/train_sim"), "--out", help="Run folder."),
    policy: str = typer.Option("sac", "--policy", help="sac (online RL) or diffusion (scripted demos, then imitation)."),
    obs: str = typer.Option("state", "--obs", help="Observation: state (privileged task state) or pixels.", callback=known_obs),
    curriculum: bool = typer.Option(True, "--curriculum/--no-curriculum", help="Widen ranges from nominal as success rises."),
    demo_episodes: int | None = typer.Option(None, "--demo-episodes", min=0,
                                             help="Scripted demos: SAC's demo buffer (default 10), diffusion's data (default 50)."),
    reward: str = typer.Option("shaped", "--reward",
                               help="SAC's reward: shaped (sparse + potential-based shaping from the task's dense "
                                    "terms), sparse, dense, or rig (the rig's task.reward)."),
    eval_every: int | None = typer.Option(None, "--eval-every", min=1, help="Environment steps between evaluations."),
    config: Path | None = typer.Option(None, "--config", help="YAML with sac: / loop: / diffusion: / diffusion_train: sections."),
    debug: bool = typer.Option(False, "--debug", help="Tiny networks and cadence: reaches every stage in seconds."),
    force: bool = ForceOption,
) -> None:
    """Train in many randomised twins at once: SAC with a curriculum, or a diffusion policy on scripted demos."""
    from tether.sim2real.profiles import PROFILES, profile_ranges
    from tether.sim2real.twin.tasks import TASKS

    if randomize not in PROFILES:
        raise typer.BadParameter(f"'{randomize}': unknown profile (known: {', '.join(PROFILES)})", param_hint="--randomize")
    if policy not in ("sac", "diffusion"):
        raise typer.BadParameter(f"'{policy}': must be sac or diffusion", param_hint="--policy")
    if reward not in ("shaped", "sparse", "dense", "rig"):
        raise typer.BadParameter(f"'{reward}': must be shaped, sparse, dense or rig", param_hint="--reward")
    try:
        rig_config = load_rig(rig)
    except ConfigError as error:
        raise typer.BadParameter(str(error), param_hint="--rig") from None
    task = task or rig_config.task.name
    if task not in TASKS:
        raise typer.BadParameter(f"'{task}': unknown task (known: {', '.join(TASKS)})", param_hint="--task")
    full = profile_ranges(randomize, rig_config)
    claim_output(out, "--out", force=force)
    rig_path = write_twin_rig(rig_config, full, out, task)
    steps = steps or TASK_STEPS.get(task, DEFAULT_STEPS)
    summary: dict[str, Any] = {"task": task, "rig": rig_config.name, "twin_rig": str(rig_path), "randomize": randomize,
                               "policy": policy, "obs": obs, "envs": envs, "seed": seed, "steps": steps}
    if policy == "sac":
        summary |= train_sac_in_twins(
            task=task, rig_path=rig_path, full=full, curriculum=curriculum and randomize != "none", envs_count=envs,
            steps=steps, seed=seed, demo_episodes=10 if demo_episodes is None else demo_episodes,
            reward=None if reward == "rig" else reward,
            obs=obs, config=config, debug=debug, eval_every=eval_every, out=out)
        message = f"final success {summary['final_success_rate']:.2f} after {summary['env_steps']} env steps"
    else:
        summary |= train_diffusion_on_demos(task=task, rig_path=rig_path, episodes=50 if demo_episodes is None
                                            else demo_episodes, seed=seed, obs=obs, config=config, debug=debug, out=out)
        message = f"{summary['demos']['episodes']} demos (success {summary['demos']['success_rate']:.2f}); wrote {out / 'diffusion'}"
    (out / SUMMARY_JSON).write_text(json.dumps(summary, indent=2) + "\n")
    typer.echo(f"train sim {task} ({policy}, {randomize}, {envs} envs): {message}; wrote {out / SUMMARY_JSON}")


def train_diffusion_on_demos(*, task: str, rig_path: Path, episodes: int, seed: int, obs: str, config: Path | None,
                             debug: bool, out: Path) -> dict[str, Any]:
    """Scripted demos in the randomised twin into OUT/demos.zarr, then `tether train diffusion` on them."""
    from tether.cli.sim import run_expert
    from tether.cli.train import diffusion_command

    if episodes < 1:
        raise typer.BadParameter("diffusion needs at least one demo", param_hint="--demo-episodes")
    demos = run_expert(task, str(rig_path), episodes, seed, out=out / DEMO_STORE)
    diffusion_command(data=out / DEMO_STORE, out=out / "diffusion", rig=str(rig_path), task=task, obs=obs,
                      objective=None, preset="cpu", steps=None, seed=seed, config=config, debug=debug, resume=False,
                      device="cpu", force=True)  # inside the run folder `train sim` has claimed
    return {"demos": demos}
