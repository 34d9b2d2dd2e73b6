"""`tether train ...`: offline or twin training of the learners in tether.policies.

The learners take a gymnasium env; this module builds it (the MuJoCo twin) and hands it in.
Hyper-parameters come from one optional YAML file (`--config`, sections `sac:`, `loop:`, `classifier:`,
`diffusion:`, `diffusion_train:`, `encoder:`) validated into the typed configs, plus the few flags below; a run
records the resolved configs in its checkpoint's config.json (the encoder's in its report.json).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import typer
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from tether.cli.options import TaskOption, known_obs, known_task, rig_task
from tether.cli.output import ForceOption, claim_output
from tether.config import DEFAULT_RIG, RigConfig
from tether.policies.encoder_pretrain import EncoderPretrainConfig
from tether.policies.reward_classifier import ClassifierConfig
from tether.policies.sac import SACConfig
from tether.policies.learner import LoopConfig
from tether.policies.sac_loop import TrainResult
from tether.policies.steering import NOISE_SCALE

app = typer.Typer(help="Train learners: SAC in the twin, the reward classifier from a store, the camera encoder.",
                  no_args_is_help=True)
log = logging.getLogger(__name__)

ObsMode = Literal["state", "pixels"]
Interventions = Literal["none", "scripted"]
RESULT_JSON = "result.json"


class TrainFile(BaseModel):
    """The optional --config YAML: one section per config model."""

    model_config = ConfigDict(extra="forbid")
    sac: dict[str, Any] = {}
    loop: dict[str, Any] = {}
    classifier: dict[str, Any] = {}
    diffusion: dict[str, Any] = {}
    diffusion_train: dict[str, Any] = {}
    encoder: dict[str, Any] = {}


def read_train_file(path: Path | None) -> TrainFile:
    """Parse --config; errors name the file and the reason in one line."""
    if path is None:
        return TrainFile()
    if not path.is_file():
        raise typer.BadParameter(f"{path}: file not found", param_hint="--config")
    try:
        return TrainFile.model_validate(yaml.safe_load(path.read_text()) or {})
    except (yaml.YAMLError, ValidationError) as error:
        raise typer.BadParameter(f"{path}: {_first_error(error)}", param_hint="--config") from None


def _first_error(error: Exception) -> str:
    if isinstance(error, ValidationError):
        item = error.errors()[0]
        return f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}"
    return str(error).replace("\n", " ")


def _validated(model: type[BaseModel], values: dict[str, Any], section: str) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise typer.BadParameter(f"{section}: {_first_error(error)}", param_hint="--config") from None


def learner_configs(
    path: Path | None, *, utd: int | None = None, checkpoint_every: int | None = None
) -> tuple[SACConfig, LoopConfig]:
    """The SAC and loop configs of a --config file, with command-line overrides on top."""
    file = read_train_file(path)
    sac = {**file.sac, **({"utd_ratio": utd} if utd is not None else {})}
    loop = {**file.loop, **({"checkpoint_every": checkpoint_every} if checkpoint_every is not None else {})}
    return _validated(SACConfig, sac, "sac"), _validated(LoopConfig, loop, "loop")


def make_twin(task: str, obs_mode: str, rig: str, **kwargs: Any):
    """The twin env for a task, imported here so that `tether --help` does not load MuJoCo."""
    from tether.sim2real.twin import make_env

    return make_env(task, rig=rig, obs_mode=obs_mode, **kwargs)


def scripted_operator(env, seed: int):
    """The twin's scripted operator with the rig's settings (speaking in residuals on a residual env)."""
    from tether.policies.residual import ResidualEnv, ResidualExpert
    from tether.sim2real.twin.expert import ScriptedOperator

    operator = ScriptedOperator(env.unwrapped.rig.teleop.scripted, seed=seed)
    return ResidualExpert(operator, env) if isinstance(env, ResidualEnv) else operator


def steered_env(env, steering):
    """`env` as SAC sees it on a frozen diffusion base (`tether.policies.steering.Steering`); errors become the
    command line's, naming --base-policy."""
    try:
        return steering.wrap(env)
    except (FileNotFoundError, ValueError) as error:
        raise typer.BadParameter(str(error), param_hint="--base-policy") from None


def run_sac(
    *,
    task: str,
    obs_mode: ObsMode,
    steps: int,
    seed: int,
    sac: SACConfig,
    loop: LoopConfig,
    demos: Path | None = None,
    demo_episodes: int = 0,
    interventions: Interventions = "none",
    rig: str = DEFAULT_RIG,
    classifier: Path | None = None,
    out: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    base_policy: Path | None = None,
    residual_scale: float = 0.2,
    steer: str = "residual",
    noise_scale: float = NOISE_SCALE,
) -> TrainResult:
    """Build the twin, fill the demo buffer (a store, or scripted episodes), and run the SAC loop.

    With a `base_policy` (a diffusion checkpoint) SAC steers it (`tether.policies.steering`): with `steer`
    'residual' it learns a residual of at most `residual_scale` on the base's actions, and scripted demos /
    interventions are mapped into residuals; with 'noise' it picks the initial noise of the base's sampler
    (times `noise_scale`) once per chunk, and learns from its own experience only (an expert's action has no
    noise to replay), with no grasp critic (the action is noise, not arm + gripper).

    With a reward `classifier` (or a rig whose task.reward is 'classifier'), training sees the
    classifier's reward and episode ends instead of the twin's; evaluation still counts true success.
    """
    from tether.datasets.replay import ReplayBuffer
    from tether.datasets.store import StoreError
    from tether.policies.learner import load_demos
    from tether.policies.reward_classifier import ClassifierReward, RewardClassifier
    from tether.policies.sac import SACAgent
    from tether.policies.sac_loop import ExpertTakeover, collect_demos, result_json, train_sac
    from tether.policies.steering import CONFIG_KEY, Steering

    steering = None
    if base_policy is not None:
        try:
            steering = Steering(base_policy, steer, residual_scale if steer == "residual" else noise_scale)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--steer") from None
        if steer == "noise" and (demos is not None or demo_episodes or interventions != "none"):
            raise typer.BadParameter("noise steering learns from its own chunks only: drop --demos, "
                                     "--demo-episodes and --interventions", param_hint="--steer")
        sac = steering.sac_config(sac)
    env = make_twin(task, obs_mode, rig)
    task_config = env.unwrapped.rig.task
    classifier = classifier or (task_config.classifier if task_config.reward == "classifier" else None)
    eval_env = make_twin(task, obs_mode, rig)
    if steering is not None:
        env, eval_env = (steered_env(e, steering) for e in (env, eval_env))
    action_dim = env.action_space.shape[0]
    demo_buffer = ReplayBuffer(env.observation_space, action_dim, loop.buffer_capacity)
    demo_load = None
    if demos is not None:  # successful episodes only: load_demos logs how many it skipped
        try:
            demo_load = load_demos(demo_buffer, demos)
        except StoreError as error:
            raise typer.BadParameter(str(error), param_hint="--demos") from None
    if demo_episodes:
        collect_demos(env, scripted_operator(env, seed + 1), demo_episodes, demo_buffer, seed=2_000_000 + seed)
        log.info("demos: %d scripted episodes, %d transitions", demo_episodes, len(demo_buffer))
    intervention = (ExpertTakeover(scripted_operator(env, seed + 2), env)
                    if interventions == "scripted" else None)
    if classifier is not None:
        env = ClassifierReward(env, RewardClassifier.load(classifier))
        log.info("reward: classifier %s (threshold %.3f)", classifier, float(env.classifier.threshold))
    agent = SACAgent(env.observation_space, action_dim, sac, seed=seed)
    result = train_sac(agent, env, loop.model_copy(update={"steps": steps}), seed=seed, demos=demo_buffer,
                       demo_load=demo_load, intervention=intervention, eval_env=eval_env, out_dir=out, resume=resume,
                       progress=progress,
                       checkpoint_config={CONFIG_KEY: steering.to_json()} if steering is not None else None)
    if out is not None:
        summary = {"task": task, "obs": obs_mode, "seed": seed, "intervention_mode": interventions,
                   "base_policy": str(base_policy) if base_policy else None, "residual_scale": residual_scale,
                   "steer": steer if base_policy else None, "noise_scale": noise_scale,
                   "demo_transitions": len(demo_buffer),
                   "demo_episodes_skipped": demo_load.skipped if demo_load is not None else 0, **result_json(result)}
        (out / RESULT_JSON).write_text(json.dumps(summary, indent=2) + "\n")
    env.close()
    eval_env.close()
    return result


DEBUG_SAC = {"hidden_dims": (64, 64), "batch_size": 32,
             "encoder": {"channels": (8, 8), "kernels": (4, 3), "strides": (4, 2), "groups": 4, "latent_dim": 16}}
DEBUG_LOOP = {"learning_starts": 20, "eval_every": 50, "eval_episodes": 1, "checkpoint_every": 50}


@app.command("sac")
def sac_command(
    task: str | None = TaskOption,
    obs: str = typer.Option("state", "--obs", help="Observation: state (privileged task state) or pixels.", callback=known_obs),
    demos: Path | None = typer.Option(None, "--demos", help="Episode store (zarr) whose episodes seed the demo buffer."),
    demo_episodes: int = typer.Option(0, "--demo-episodes", min=0, help="Scripted-operator demos to collect first."),
    steps: int = typer.Option(20_000, "--steps", min=1, help="Environment steps."),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("runs/sac"), "--out", help="Run folder: checkpoint/, curve.json, curve.png."),
    interventions: str = typer.Option("none", "--interventions", help="none, or scripted: the operator takes over."),
    utd: int | None = typer.Option(None, "--utd", min=1, help="Critic updates per environment step."),
    eval_every: int | None = typer.Option(None, "--eval-every", min=1, help="Environment steps between evaluations."),
    classifier: Path | None = typer.Option(None, "--classifier", help="Reward-classifier checkpoint: train on its reward."),
    config: Path | None = typer.Option(None, "--config", help="YAML with sac: / loop: sections of overrides."),
    rig: str = typer.Option(DEFAULT_RIG, "--rig", help="Rig name or YAML path."),
    debug: bool = typer.Option(False, "--debug", help="Tiny networks and cadence: reaches every stage in seconds."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from OUT/checkpoint if it exists."),
    force: bool = ForceOption,
    base_policy: Path | None = typer.Option(None, "--base-policy", help="Frozen diffusion checkpoint for SAC to steer."),
    steer: str = typer.Option("residual", "--steer", help="With --base-policy: residual (on its actions) or noise "
                              "(its sampler's initial noise, DSRL)."),
    residual_scale: float = typer.Option(0.2, "--residual-scale", min=0.0, help="Largest residual per action dim."),
    noise_scale: float = typer.Option(NOISE_SCALE, "--noise-scale", min=0.0, help="--steer noise: noise = scale * action."),
) -> None:
    """Train SAC (RLPD-style, optional scripted interventions) in the twin; writes a learning curve."""
    from tether import spaces
    from tether.cli.train_sim import task_sac_defaults
    from tether.config import load_rig
    from tether.policies.checkpoint import TRAINING_FILE
    from tether.policies.learner import CHECKPOINT_DIR

    if interventions not in ("none", "scripted"):
        raise typer.BadParameter(f"'{interventions}': must be none or scripted", param_hint="--interventions")
    if demos is not None and not demos.exists():
        raise typer.BadParameter(f"{demos}: no such store", param_hint="--demos")
    if steer != "residual" and base_policy is None:
        raise typer.BadParameter(f"'{steer}' steers a base policy: give --base-policy DIR", param_hint="--steer")
    file = read_train_file(config)
    sac_values = {**(DEBUG_SAC if debug else {}), **file.sac, **({"utd_ratio": utd} if utd else {})}
    loop_values = {**(DEBUG_LOOP if debug else {}), **file.loop, **({"eval_every": eval_every} if eval_every else {})}
    if classifier is not None and not classifier.is_dir():
        raise typer.BadParameter(f"{classifier}: no such checkpoint folder", param_hint="--classifier")
    if classifier is not None and obs != "pixels":
        raise typer.BadParameter("a reward classifier reads camera images: use --obs pixels", param_hint="--classifier")
    task = rig_task(task, rig)
    sac_values = {**task_sac_defaults(task, spaces.action_space(load_rig(rig), task).shape[0]), **sac_values}
    sac = _validated(SACConfig, sac_values, "sac")
    loop = _validated(LoopConfig, loop_values, "loop")
    claim_output(out, "--out", force=force, resuming=resume and (out / CHECKPOINT_DIR / TRAINING_FILE).is_file())
    result = run_sac(task=task, obs_mode=obs, steps=steps, seed=seed, sac=sac, loop=loop, demos=demos,
                     demo_episodes=demo_episodes, interventions=interventions, rig=rig, classifier=classifier, out=out,
                     resume=resume, base_policy=base_policy, residual_scale=residual_scale, steer=steer,
                     noise_scale=noise_scale)
    final = result.curve[-1] if result.curve else {}
    typer.echo(f"{task} ({obs}): final success {final.get('success_rate', float('nan')):.2f} after {steps} steps; "
               f"{result.updates_per_second:.1f} updates/s, UTD achieved {result.utd_achieved:.2f}; wrote {out}")


@app.command("reward-classifier")
def reward_classifier_command(
    data: Path = typer.Option(..., "--data", help="Episode store (zarr) with camera images and rewards."),
    out: Path = typer.Option(..., "--out", help="Checkpoint folder to write."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Gradient steps (default from the config)."),
    seed: int = typer.Option(0, "--seed"),
    config: Path | None = typer.Option(None, "--config", help="YAML with a classifier: section of overrides."),
    force: bool = ForceOption,
) -> None:
    """Train the success classifier on frames of a store; reports precision / recall / F1 and the threshold."""
    from tether.datasets.store import EpisodeStore, StoreError
    from tether.policies.reward_classifier import train_reward_classifier

    file = read_train_file(config)
    values = {**file.classifier, **({"steps": steps} if steps else {})}
    classifier_config = _validated(ClassifierConfig, values, "classifier")
    try:
        store = EpisodeStore(data)
    except StoreError as error:
        raise typer.BadParameter(str(error), param_hint="--data") from None
    space = store.observation_space
    cameras = [k for k in space.spaces if k.startswith("images/")]
    if not cameras:
        raise typer.BadParameter(f"{data}: the store has no camera images", param_hint="--data")
    claim_output(out, "--out", force=force)
    episodes = [store.episode(i, keys=cameras) for i in range(store.n_episodes)]
    classifier, report = train_reward_classifier(episodes, space, classifier_config, seed=seed)
    classifier.save(out, asdict(report))
    typer.echo(f"reward classifier: precision {report.precision:.2f}, recall {report.recall:.2f}, "
               f"F1 {report.f1:.2f} at threshold {report.threshold:.3f} on {report.val_positives} + "
               f"{report.val_negatives} held-out frames; wrote {out}")


DEBUG_DIFFUSION = {"down_dims": (32, 64), "step_embed_dim": 16,
                   "vision": {"widths": (8, 16), "blocks_per_stage": 1, "group_size": 4, "keypoints": 8,
                              "latent_dim": 16}}
DEBUG_DIFFUSION_TRAIN = {"steps": 4, "batch_size": 16, "warmup_steps": 2, "checkpoint_every": 2, "eval_every": 2,
                         "eval_episodes": 1}


def layered(*layers: dict[str, Any]) -> dict[str, Any]:
    """Later layers override earlier ones key by key, into nested sections (a file's `vision: {weights: F}` keeps
    the preset's trunk widths)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            nested = isinstance(value, dict) and isinstance(merged.get(key), dict)
            merged[key] = layered(merged[key], value) if nested else value
    return merged


@app.command("diffusion")
def diffusion_command(
    data: Path = typer.Option(..., "--data", help="Episode store (zarr) of demonstrations."),
    out: Path = typer.Option(Path("runs/diffusion"), "--out", help="Run folder: last/, best/, topk/, report."),
    rig: str = typer.Option(DEFAULT_RIG, "--rig", help="Rig name or YAML path: its twin task evaluates rollouts."),
    task: str | None = typer.Option(None, "--task", "-t", help="Twin task for rollouts (default: the rig's task).", callback=known_task),
    obs: str = typer.Option("state", "--obs", help="Observation: state (privileged task state) or pixels.", callback=known_obs),
    objective: str | None = typer.Option(None, "--objective", help="ddpm (DDIM sampling) or flow (1-4 step sampler)."),
    preset: str = typer.Option("cpu", "--preset", help="Recipe the config file and flags refine: cpu (small U-Net, 6,000 steps) or paper."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Gradient steps in all (default: the preset's)."),
    seed: int = typer.Option(0, "--seed"),
    config: Path | None = typer.Option(None, "--config", help="YAML with diffusion: / diffusion_train: sections."),
    debug: bool = typer.Option(False, "--debug", help="Tiny networks, four steps: reaches every stage in seconds."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from OUT/last if it exists."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (under torchrun: each process its LOCAL_RANK's GPU)."),
    force: bool = ForceOption,
) -> None:
    """Train a diffusion policy on a store's windows; twin rollouts pick the best checkpoints.

    Data-parallel on several processes when launched by torchrun (gloo on the CPU, nccl on GPUs): each takes an
    equal share of every batch; process 0 validates, evaluates and writes the run folder.
    """
    import os

    import torch.distributed as dist

    from tether.config import load_rig
    from tether.datasets.store import EpisodeStore, StoreError
    from tether.policies.diffusion import DiffusionConfig
    from tether.policies.diffusion_train import PRESETS, TrainConfig, train_diffusion

    if objective not in (None, "ddpm", "flow"):
        raise typer.BadParameter(f"'{objective}': must be ddpm or flow", param_hint="--objective")
    if preset not in PRESETS:
        raise typer.BadParameter(f"'{preset}': must be one of {', '.join(PRESETS)}", param_hint="--preset")
    file = read_train_file(config)
    policy_values = layered(PRESETS[preset]["diffusion"], DEBUG_DIFFUSION if debug else {}, file.diffusion,
                            {"objective": objective} if objective else {})
    train_values = layered(PRESETS[preset]["diffusion_train"], DEBUG_DIFFUSION_TRAIN if debug else {},
                           file.diffusion_train, {"steps": steps} if steps else {})
    policy_config = _validated(DiffusionConfig, policy_values, "diffusion")
    train_config = _validated(TrainConfig, train_values, "diffusion_train")
    torch_device = training_device(device)
    try:
        store = EpisodeStore(data)
    except StoreError as error:
        raise typer.BadParameter(str(error), param_hint="--data") from None
    claim_output(out, "--out", force=force, resuming=resume and (out / "last").is_dir())
    env = make_twin(task or load_rig(rig).task.name, obs, rig)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch_device.type == "cuda" else "gloo")
    try:
        policy, report = train_diffusion(store, env.observation_space, policy_config, train_config, seed=seed,
                                         eval_env=env, out_dir=out, resume=resume, device=torch_device)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--data") from None
    finally:
        env.close()
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")):
        return
    best = report.best or {}
    typer.echo(f"diffusion ({policy_config.objective}, {obs}): {report.steps} steps at "
               f"{report.steps_per_second:.1f}/s; "
               f"best {best.get('name')} success {best.get('success_rate', float('nan')):.2f}; wrote {out}")


def training_device(name: str):
    """--device as a torch device: `cuda` is this process's GPU (LOCAL_RANK under torchrun); refused in one line
    where torch sees none."""
    import os

    import torch

    if name not in ("cpu", "cuda"):
        raise typer.BadParameter(f"'{name}': must be cpu or cuda", param_hint="--device")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise typer.BadParameter("cuda: torch sees no CUDA device here (a CPU build, or no GPU)", param_hint="--device")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


SHIFTED_TABLE_RGB = (0.45, 0.55, 0.70)
"""The shifted twin's table: blue-grey instead of beige (its red channel beyond the training colour jitter)."""
SHIFTED_CUBE_RGB = (0.95, 0.45, 0.10)
"""The shifted twin's cube: orange instead of red (within the training colour jitter)."""
SHIFTED_TOP_LIGHT = (0.75, 0.55, 0.35)
"""The shifted twin's top light: warm (training only scales the white light)."""
SHIFTED_HEADLIGHT = 0.3
"""The shifted twin's headlight diffuse (nominal 0.5; training never changes it)."""
SHIFTED_CAMERA_M = 0.02
"""Sideways (+y) move of every world-mounted camera of the shifted twin, still aimed at the same point."""


def shifted_twin(rig: RigConfig):
    """The pick_cube twin (obs 'all') in a look the encoder never trained on: see the SHIFTED_* constants.

    The rig's own randomisation stays as it is (off for twin_panda), so the shift is the same in every episode.
    """
    moved = [
        camera.model_copy(update={"pose": camera.pose.model_copy(
            update={"pos": (camera.pose.pos[0], camera.pose.pos[1] + SHIFTED_CAMERA_M, camera.pose.pos[2])})})
        if camera.pose is not None and camera.pose.mount == "world" else camera
        for camera in rig.cameras
    ]
    env = make_twin("pick_cube", "all", rig.model_copy(update={"cameras": moved}))
    sim = env.unwrapped.sim
    # The randomiser writes its nominal values back at every reset: the new colours and light go there.
    sim.randomizer.nominal["geom_rgba"][sim.model.geom("table").id, :3] = SHIFTED_TABLE_RGB
    sim.randomizer.nominal["geom_rgba"][sim.model.geom("cube").id, :3] = SHIFTED_CUBE_RGB
    sim.randomizer.nominal["light_diffuse"][sim.model.light("top").id] = SHIFTED_TOP_LIGHT
    sim.model.vis.headlight.diffuse[:] = SHIFTED_HEADLIGHT
    return env


DEBUG_ENCODER = {"episodes": 2, "val_episodes": 4, "episode_steps": 12, "steps": 8, "batch_size": 8}
ENCODER_DEFAULTS = EncoderPretrainConfig()
ENCODER_FILE = "encoder.safetensors"
ENCODER_REPORT = "report.json"


@app.command("encoder")
def encoder_command(
    episodes: int | None = typer.Option(None, "--episodes", min=1,
                                        help=f"Training episodes rendered (default {ENCODER_DEFAULTS.episodes})."),
    steps: int | None = typer.Option(None, "--steps", min=1, help=f"Adam steps (default {ENCODER_DEFAULTS.steps})."),
    seed: int = typer.Option(0, "--seed", min=0),
    out: Path = typer.Option(Path("runs/encoder"), "--out", help="Folder: encoder.safetensors and report.json."),
    rig: str = typer.Option(DEFAULT_RIG, "--rig", help="Rig name or YAML path: its twin cameras are rendered."),
    config: Path | None = typer.Option(None, "--config", help="YAML with an encoder: section of overrides."),
    threads: int = typer.Option(1, "--threads", min=1, help="Torch threads (the same seed and count give the same "
                                "file; another count may change the last bits)."),
    debug: bool = typer.Option(False, "--debug", help="A few frames and steps: reaches every stage in seconds."),
    force: bool = ForceOption,
) -> None:
    """Pretrain the agent's camera trunk (convs + spatial softmax, one for all cameras) on randomised twin renders.

    Writes the trunk as safetensors (the keys of ConvTrunk's state dict plus pool.log_temperature) for
    EncoderConfig.backbone, and a report of linear probes on held-out and shifted-twin frames.
    """
    import time

    import torch

    from tether.config import ConfigError, load_rig
    from tether.policies.encoder_pretrain import EPISODE_SEEDS, collect_frames, run_pretraining, save_encoder

    started = time.monotonic()
    file = read_train_file(config)
    values = {**(DEBUG_ENCODER if debug else {}), **file.encoder, **({"episodes": episodes} if episodes else {}),
              **({"steps": steps} if steps else {})}
    recipe = _validated(EncoderPretrainConfig, values, "encoder")
    try:
        rig_config = load_rig(rig)
    except ConfigError as error:
        raise typer.BadParameter(str(error), param_hint="--rig") from None
    claim_output(out, "--out", force=force)
    torch.set_num_threads(threads)
    base = seed * 100_000
    splits = {}
    for split, count in (("train", recipe.episodes), ("validation", recipe.val_episodes),
                         ("shifted", recipe.val_episodes)):
        try:
            env = shifted_twin(rig_config) if split == "shifted" else make_twin("pick_cube", "all", rig_config)
            operator = scripted_operator(env, seed + EPISODE_SEEDS[split])
            splits[split] = collect_frames(env, operator, count, recipe, seed=base + EPISODE_SEEDS[split],
                                           randomization=None if split == "shifted" else recipe.randomization)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--rig") from None
        env.close()
    encoder, report = run_pretraining(splits["train"], splits["validation"], splits["shifted"], recipe, seed=seed)
    given = [("--episodes", episodes), ("--steps", steps), ("--rig", None if rig == DEFAULT_RIG else rig),
             ("--config", config), ("--threads", threads)]
    command = " ".join(["tether train encoder", *(["--debug"] if debug else []), f"--seed {seed}",
                        *(f"{flag} {value}" for flag, value in given if value is not None)])
    report = {"command": command, **report, "wall_s": round(time.monotonic() - started, 1)}
    save_encoder(encoder, out / ENCODER_FILE, report)
    (out / ENCODER_REPORT).write_text(json.dumps(report, indent=2) + "\n")
    data = report["data"]
    typer.echo(f"encoder: {data['train_episodes']} episodes, {data['train_images']} images "
               f"({' + '.join(data['cameras'])}), {recipe.steps} Adam steps; {report['wall_s']:.0f} s in all")
    typer.echo("linear probe on frozen keypoints    cube RMSE mm   R^2 |  TCP RMSE mm   R^2")
    for encoder_name, sets in report["probe"].items():
        for set_name, scores in sets.items():
            cube, tcp = scores["cube_pos"], scores["tcp_pos"]
            typer.echo(f"  {encoder_name + ', ' + set_name:<33} {cube['rmse_mm']:>12.1f} {cube['r2']:>5.2f} | "
                       f"{tcp['rmse_mm']:>11.1f} {tcp['r2']:>5.2f}")
    typer.echo(f"wrote {out / ENCODER_FILE} and {out / ENCODER_REPORT}")
