"""Diffusion policy: U-Net and encoder shapes, normaliser, schedulers, EMA, checkpoints, the chunked executor,
and training on scripted pick_cube demos through the CLI."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from tether.cli import app, main
from tether.datasets.sampler import SequenceSampler
from tether.datasets.store import EpisodeStore, EpisodeWriter
from tether.policies.checkpoint import MODEL_FILE, checkpoint_kind
from tether.policies.chunking import ChunkedExecutor
from tether.policies.diffusion import (
    ConditionalUnet1D,
    DiffusionConfig,
    DiffusionPolicy,
    MinMaxNormaliser,
    ResNetTrunk,
    VisionConfig,
    actions_to_targets,
    chunked_policy,
    targets_to_actions,
)
from tether.policies.diffusion_train import episode_windows, split_episodes

torch.set_num_threads(1)
runner = CliRunner()

TINY_VISION = VisionConfig(widths=(8, 16), blocks_per_stage=1, group_size=4, keypoints=4, latent_dim=8)
TINY = DiffusionConfig(down_dims=(16, 32), step_embed_dim=8, vision=TINY_VISION)


def _obs(space, batch: int, steps: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    out = {}
    for key, box in space.spaces.items():
        if box.dtype == np.uint8:
            out[key] = torch.as_tensor(rng.integers(0, 256, (batch, steps, *box.shape), dtype=np.uint8))
        else:
            out[key] = torch.as_tensor(rng.normal(size=(batch, steps, *box.shape)).astype(np.float32))
    return out


# --- networks ----------------------------------------------------------------------------


@pytest.mark.parametrize(("horizon", "down_dims"), [(8, (16, 32)), (16, (16, 32, 64)), (12, (16, 32))])
def test_unet_keeps_the_chunk_shape_for_several_horizons(horizon: int, down_dims: tuple[int, ...]) -> None:
    config = DiffusionConfig(horizon=horizon, n_action_steps=4, down_dims=down_dims, step_embed_dim=8)
    unet = ConditionalUnet1D(action_dim=4, cond_dim=10, config=config)
    out = unet(torch.randn(3, horizon, 4), torch.tensor([0, 5, 99]), torch.randn(3, 10))
    assert out.shape == (3, horizon, 4)


def test_config_names_inconsistent_windows() -> None:
    with pytest.raises(ValueError, match="horizon 10 must be divisible by 4"):
        DiffusionConfig(horizon=10, n_action_steps=4, down_dims=(8, 16, 32))
    with pytest.raises(ValueError, match="n_action_steps 16 exceeds the 15 actions"):
        DiffusionConfig(n_action_steps=16)
    with pytest.raises(ValueError, match="group_size 16 must divide every width"):
        VisionConfig(widths=(8, 16))
    assert DiffusionConfig().sampler_steps == 10 and DiffusionConfig(objective="flow").sampler_steps == 2


def test_policy_encodes_two_cameras_and_state_into_one_condition(h) -> None:
    space = h.pixel_space(("front", "wrist"), size=32)
    policy = DiffusionPolicy(space, 4, TINY)
    obs = _obs(space, 5, TINY.n_obs_steps, np.random.default_rng(0))
    cond = policy.encode(obs, torch.Generator().manual_seed(0))
    assert cond.shape == (5, TINY.n_obs_steps * (8 + 2 * TINY_VISION.latent_dim))  # 7 + 1 state dims, 2 cameras
    assert policy.cameras["images__front"].crop_size == (29, 29)  # 0.9 of 32
    # Centre crop (acting) is deterministic; random crops (training) are not.
    assert torch.equal(policy.encode(obs), policy.encode(obs))
    assert not torch.equal(policy.encode(obs, torch.Generator().manual_seed(1)), policy.encode(obs))


def test_trunk_loads_local_weights_and_names_a_misfit(tmp_path: Path) -> None:
    source = ResNetTrunk(TINY_VISION)
    path = tmp_path / "trunk.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    vision = TINY_VISION.model_copy(update={"weights": path})
    policy = DiffusionPolicy(h_pixel_space(), 4, TINY.model_copy(update={"vision": vision}))
    loaded = policy.cameras["images__front"].trunk.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    wider = TINY_VISION.model_copy(update={"widths": (8, 32), "weights": path})
    with pytest.raises(ValueError, match="trunk.safetensors: .* has shape"):
        DiffusionPolicy(h_pixel_space(), 4, TINY.model_copy(update={"vision": wider}))


def h_pixel_space():
    import gymnasium as gym

    return gym.spaces.Dict({"images/front": gym.spaces.Box(0, 255, (24, 24, 3), np.uint8),
                            "state/gripper": gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)})


# --- normaliser and schedulers ---------------------------------------------------------


def test_normaliser_maps_the_data_range_to_unit_interval_and_back() -> None:
    rng = np.random.default_rng(0)
    # The last two dimensions hardly vary: one is constant, one jitters by 1e-4 (a quaternion component of a cube
    # that only turns about z, say). Neither may be blown up: their spread maps to no more than its share of
    # MIN_SPAN, and a drift of 1 cm off the data at deployment stays a modest input.
    data = rng.uniform([-3.0, 0.0, 5.0, 0.3], [2.0, 0.5, 5.0, 0.3001], size=(200, 4)).astype(np.float32)
    normaliser = MinMaxNormaliser({"state/x": 4}).fit({"state/x": data})
    x = torch.as_tensor(data)
    normalised = normaliser.normalise("state/x", x)
    assert torch.allclose(normalised[:, :2].min(0).values, torch.tensor([-1.0, -1.0]), atol=1e-6)
    assert torch.allclose(normalised[:, :2].max(0).values, torch.tensor([1.0, 1.0]), atol=1e-6)
    assert torch.all(normalised[:, 2] == 0)
    assert normalised[:, 3].abs().max() <= 1e-4 / MinMaxNormaliser.MIN_SPAN + 1e-6
    drifted = normaliser.normalise("state/x", x[:1] + torch.tensor([0.0, 0.0, 0.01, 0.01]))
    assert drifted[0, 2:].abs().max() <= 1.0 + 1e-3
    assert torch.allclose(normaliser.unnormalise("state/x", normalised), x, atol=1e-5)


@pytest.mark.parametrize(("objective", "steps", "calls"), [("ddpm", None, 10), ("ddpm", 100, 100), ("flow", None, 2),
                                                           ("flow", 1, 1), ("flow", 4, 4)])
def test_sampler_runs_the_configured_number_of_denoiser_steps(h, objective: str, steps: int | None, calls: int) -> None:
    space = h.state_space()
    policy = DiffusionPolicy(space, 4, TINY.model_copy(update={"objective": objective, "inference_steps": steps}))
    policy.normaliser.fit({"state/tcp_pose": np.zeros((1, 7)), "state/gripper": np.zeros((1, 1)),
                           "action": np.array([[-2.0, -1, -1, -1], [2.0, 1, 1, 1]])})
    counted = []
    policy.unet.register_forward_hook(lambda *_: counted.append(1))
    chunk = policy.sample(_obs(space, 3, TINY.n_obs_steps, np.random.default_rng(0)),
                          generator=torch.Generator().manual_seed(0))
    assert len(counted) == calls
    assert chunk.shape == (3, TINY.horizon, 4)
    assert chunk[..., 0].abs().max() <= 2.0 + 1e-5  # within the (un-normalised) action range


def test_ddpm_schedule_is_squared_cosine_and_ddim_visits_evenly_spaced_steps(h) -> None:
    policy = DiffusionPolicy(h.state_space(), 4, TINY)
    betas = policy.train_scheduler.betas
    assert len(betas) == 100 and betas[0] < betas[50] < betas[-1] <= 0.999
    policy.sampler.set_timesteps(10)
    assert policy.sampler.timesteps.tolist() == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]


def test_a_chunked_policy_draws_its_noise_from_the_episodes_first_observation(h) -> None:
    """Common random numbers: the same scene, the same actions, whatever ran before; another scene, other noise."""
    space = h.state_space()
    policy = DiffusionPolicy(space, 4, TINY)
    policy.normaliser.fit({"state/tcp_pose": np.zeros((1, 7)), "state/gripper": np.zeros((1, 1)),
                           "action": np.array([[-2.0, -1, -1, -1], [2.0, 1, 1, 1]])})
    rng = np.random.default_rng(0)
    scenes = [{key: rng.normal(size=box.shape).astype(np.float32) for key, box in space.spaces.items()}
              for _ in range(2)]

    def episode(executor: ChunkedExecutor, scene: dict) -> np.ndarray:
        executor.reset()
        return np.stack([executor.act(scene) for _ in range(3)])

    first, second = chunked_policy(policy, asynchronous=False), chunked_policy(policy, asynchronous=False)
    played = episode(first, scenes[0])
    episode(second, scenes[1])  # a different history before the same scene
    assert np.array_equal(episode(second, scenes[0]), played)
    assert not np.allclose(episode(first, scenes[1]), played)


# --- the chunked executor ----------------------------------------------------------------


class Planner:
    """A chunk function that records the history it saw and answers chunk [origin_id*100 + i]; calls after the
    first optionally wait for `release` (a slow model)."""

    def __init__(self, length: int, block_after_first: bool = False) -> None:
        self.length, self.histories = length, []
        self.release, self.block = threading.Event(), block_after_first
        self.started = threading.Event()

    def __call__(self, history: dict[str, np.ndarray]) -> np.ndarray:
        self.histories.append(history["x"].copy())
        if self.block and len(self.histories) > 1:
            self.started.set()
            self.release.wait(timeout=30)
        base = 100 * int(history["x"][-1, 0])  # the tick of the newest observation
        return np.array([[base + i, 0.0, 0.0, 1.0] for i in range(self.length)], np.float32)


def _tick(executor: ChunkedExecutor, t: int) -> np.ndarray:
    return executor.act({"x": np.array([t], np.float32), "ignored": np.zeros(1)})


def test_synchronous_executor_runs_n_action_steps_then_replans_with_the_history() -> None:
    planner = Planner(length=15)
    executor = ChunkedExecutor(planner, ["x"], n_obs_steps=2, n_action_steps=8, asynchronous=False)
    actions = [_tick(executor, t)[0] for t in range(20)]
    assert actions == [0, 1, 2, 3, 4, 5, 6, 7, 800, 801, 802, 803, 804, 805, 806, 807, 1600, 1601, 1602, 1603]
    assert [h[:, 0].tolist() for h in planner.histories] == [[0, 0], [7, 8], [15, 16]]  # first obs repeated
    executor.reset()
    _tick(executor, 50)
    assert planner.histories[-1][:, 0].tolist() == [50, 50]  # nothing from before the reset


def test_asynchronous_executor_never_waits_for_a_slow_model_after_the_first_chunk() -> None:
    planner = Planner(length=10, block_after_first=True)
    executor = ChunkedExecutor(planner, ["x"], n_obs_steps=2, n_action_steps=8, asynchronous=True, prefetch=2)
    try:
        actions = [_tick(executor, t) for t in range(7)]  # the chunk planned at tick 6 gets stuck
        assert planner.started.wait(timeout=30)
        actions += [_tick(executor, t) for t in range(7, 14)]
        assert [a[0] for a in actions[:10]] == list(range(10))  # the first chunk runs out ...
        assert all(a[0] == 0 and a[-1] == 1.0 for a in actions[10:])  # ... then hold: no motion, gripper kept
        assert executor.starved == 4
        planner.release.set()
        while executor._pending is not None and not executor._pending[1].done():
            threading.Event().wait(0.01)
        # The chunk planned at tick 6 arrives at tick 14 and is entered at its index for tick 14.
        assert _tick(executor, 14)[0] == 600 + 8
        assert planner.histories[1][:, 0].tolist() == [5, 6]
    finally:
        planner.release.set()
        executor.close()


def test_temporal_ensembling_averages_overlapping_chunks_with_older_ones_weighted_more() -> None:
    planner = Planner(length=15)
    executor = ChunkedExecutor(planner, ["x"], n_obs_steps=1, n_action_steps=4, asynchronous=False, ensemble=0.5)
    actions = [_tick(executor, t)[0] for t in range(5)]
    assert actions[:4] == [0, 1, 2, 3]
    weights = np.exp(-0.5 * np.arange(2))
    assert actions[4] == pytest.approx((weights @ [4, 400]) / weights.sum())


def test_absolute_targets_are_where_the_actions_aimed_and_each_tick_steers_from_the_observed_position() -> None:
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (50, 4)).astype(np.float32)
    poses = np.concatenate([rng.uniform(-0.5, 0.5, (50, 3)), np.tile([0, 0, 0, 1.0], (50, 1))], 1)
    targets = actions_to_targets(actions, poses, 0.02)
    assert np.allclose(targets[:, :3], poses[:, :3] + 0.02 * actions[:, :3], atol=1e-6)
    assert np.array_equal(targets[:, 3], actions[:, 3])  # the gripper is a command, not a position
    assert np.allclose(targets_to_actions(targets, poses, 0.02), actions, atol=1e-4)
    # The arm lagged 1 cm behind in x: the next tick's action makes up for it, clipped to the action range.
    lagging = poses[0] - np.array([0.01, 0, 0, 0, 0, 0, 0])
    assert targets_to_actions(targets[0], lagging, 0.02)[0] == pytest.approx(min(1.0, actions[0, 0] + 0.5), abs=1e-4)
    # The executor converts each entry with the observation of the tick that runs it, not the one that planned it.
    executor = ChunkedExecutor(Planner(length=15), ["x"], n_obs_steps=1, n_action_steps=8, asynchronous=False,
                               to_action=lambda obs, entry: entry - obs["x"][0])
    assert [_tick(executor, t)[0] for t in range(4)] == [0, 0, 0, 0]


def test_absolute_targets_train_on_the_store_rigs_scale_and_act_in_the_action_range(tmp_path: Path, plain) -> None:
    from tether.config import load_rig

    base = load_rig("twin_panda")
    rig = base.model_copy(update={"arm": base.arm.model_copy(update={"action_scale": (0.03, 0.1)})})
    store = _demo_store(tmp_path / "demos.zarr", 3, rig=rig)
    config = tmp_path / "absolute.yaml"
    config.write_text(json.dumps({"diffusion": {"action_targets": "absolute"}, "diffusion_train": {"eval_every": 0}}))
    _invoke("train", "diffusion", "--data", str(store.path), "--debug", "--config", str(config), "--out", str(tmp_path / "run"))
    policy = DiffusionPolicy.load(tmp_path / "run" / "best")
    assert policy.config.action_targets == "absolute" and policy.config.translation_scale == 0.03
    centre = policy.normaliser._low("action")[:3] + policy.normaliser._high("action")[:3]
    assert np.all(np.abs(centre.numpy() / 2) > 0.01)  # targets are positions in the workspace, not displacements
    executor = chunked_policy(policy, asynchronous=False)
    episode = store.episode(0)
    action = executor.act({k: episode.obs[k][0] for k in policy.observation_keys})
    assert action.shape == (4,) and np.all(np.abs(action) <= 1.0)
    without_rig = _demo_store(tmp_path / "no_rig.zarr", 2)
    result = runner.invoke(app, ["train", "diffusion", "--data", str(without_rig.path), "--debug", "--config",
                                 str(config), "--out", str(tmp_path / "other")])
    assert result.exit_code == 2 and "no rig snapshot with arm.action_scale" in plain(result.output)


# --- checkpoints and training ------------------------------------------------------------


def _demo_store(path: Path, episodes: int, obs_mode: str = "state", rig=None) -> EpisodeStore:
    """Scripted pick_cube episodes; `rig`, when given, is the rig snapshot the store keeps."""
    from tether.sim2real.twin import make_env
    from tether.sim2real.twin.expert import ScriptedOperator

    env = make_env("pick_cube", obs_mode=obs_mode)
    operator = ScriptedOperator(env.unwrapped.rig.teleop.scripted, seed=0)
    with EpisodeWriter.create(path, env.observation_space, 4, fps=10, rig=rig) as writer:
        for seed in range(episodes):
            obs, _ = env.reset(seed=seed)
            operator.reset()
            writer.begin_episode(source="scripted", task="pick_cube", seed=seed)
            done = False
            while not done:
                action = operator.act(env)
                next_obs, reward, terminated, truncated, info = env.step(action)
                writer.add_step(obs, action, reward, terminated, truncated, intervened=True)
                obs, done = next_obs, terminated or truncated
            writer.end_episode(success=info["success"], final_obs=obs)
    env.close()
    return EpisodeStore(path)


def test_held_out_episodes_get_their_own_windows(tmp_path: Path) -> None:
    store = _demo_store(tmp_path / "demos.zarr", 4)
    sampler = SequenceSampler(store, 2, 16)
    train, val = split_episodes(store.n_episodes, 0.25, seed=0)
    assert len(val) == 1 and sorted(train + val) == [0, 1, 2, 3]
    windows = episode_windows(store, sampler, val)
    info = store.episodes[val[0]]
    assert len(windows) == info.stop - info.start + 1 + 14 - 16 + 1  # pad_before 1, pad_after 14
    frames = store.load("action")[info.start : info.stop]
    for index in windows[[0, -1]]:
        assert all(any(np.array_equal(a, f) for f in frames) for a in sampler[int(index)]["action"])


def test_checkpoint_round_trip_is_safetensors_and_json(h, tmp_path: Path) -> None:
    space = h.pixel_space(("front",), size=24)
    policy = DiffusionPolicy(space, 4, TINY.model_copy(update={"objective": "flow"}))
    policy.normaliser.fit({"state/tcp_pose": np.random.default_rng(0).normal(size=(10, 7)),
                           "state/gripper": np.zeros((10, 1)), "action": np.random.default_rng(1).normal(size=(10, 4))})
    policy.save(tmp_path / "ckpt")
    assert checkpoint_kind(tmp_path / "ckpt") == "diffusion"
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", MODEL_FILE]
    loaded = DiffusionPolicy.load(tmp_path / "ckpt")
    assert loaded.config == policy.config and loaded.observation_space == space
    obs = _obs(space, 2, 2, np.random.default_rng(2))
    noise = torch.randn(2, TINY.horizon, 4)
    assert torch.equal(loaded.sample(obs, noise=noise), policy.eval().sample(obs, noise=noise))
    (tmp_path / "sac").mkdir()
    (tmp_path / "sac" / "config.json").write_text(json.dumps({"kind": "sac"}))
    (tmp_path / "sac" / MODEL_FILE).write_bytes((tmp_path / "ckpt" / MODEL_FILE).read_bytes())
    with pytest.raises(ValueError, match="kind is 'sac', not 'diffusion'"):
        DiffusionPolicy.load(tmp_path / "sac")


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_train_diffusion_debug_from_pixels_reaches_rollouts_checkpoints_report_and_resume(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    store = _demo_store(tmp_path / "pixels.zarr", 3, obs_mode="pixels")
    out = tmp_path / "run"
    output = _invoke("train", "diffusion", "--data", str(store.path), "--obs", "pixels", "--debug", "--out", str(out))
    assert "diffusion (ddpm, pixels)" in output
    report = json.loads((out / "report.json").read_text())
    assert [row["step"] for row in report["rows"]] == [2, 4]
    assert all("val_loss" in row and "success_rate" in row for row in report["rows"])
    assert len(report["val_episodes"]) == 1 and len(report["train_episodes"]) == 2
    assert (out / "report.png").stat().st_size > 0 and (out / "best" / MODEL_FILE).is_file()
    assert sorted(p.name for p in (out / "topk").iterdir()) == ["step_0000002", "step_0000004"]
    policy = DiffusionPolicy.load(out / "best")
    assert policy.image_keys == ["images/front", "images/wrist"]
    assert "state/cube_pos" not in policy.state_keys  # pixels: proprioception only
    # Resume continues from last/: same history, one more row, the step counter carried on.
    _invoke("train", "diffusion", "--data", str(store.path), "--obs", "pixels", "--debug", "--steps", "6",
            "--out", str(out))
    resumed = json.loads((out / "report.json").read_text())
    assert resumed["rows"][:2] == report["rows"] and resumed["rows"][2]["step"] == 6
    capfd.readouterr()
    with pytest.raises(SystemExit) as bad:  # through the entry point: one plain line whatever the terminal width
        main(["train", "diffusion", "--data", str(store.path), "--obs", "state", "--debug", "--out", str(tmp_path / "other")])
    error = capfd.readouterr().err
    assert bad.value.code == 2 and error.count("\n") == 1
    assert "no observation ['state/cube_pos', 'state/cube_quat']" in error


def test_flow_policy_learns_pick_cube_from_twenty_scripted_demos(tmp_path: Path) -> None:
    """A small flow-matching policy on privileged state: clearly better than the same network untrained."""
    from tether.policies.diffusion_train import rollout
    from tether.policies.registry import load_policy
    from tether.sim2real.twin import make_env

    store = _demo_store(tmp_path / "demos.zarr", 20)
    config = tmp_path / "small.yaml"
    config.write_text(json.dumps({
        "diffusion": {"objective": "flow", "down_dims": [64, 128], "step_embed_dim": 32},
        "diffusion_train": {"steps": 520, "lr": 1e-3, "warmup_steps": 50, "checkpoint_every": 130,
                            "eval_every": 520, "eval_episodes": 10},
    }))
    out = tmp_path / "run"
    _invoke("train", "diffusion", "--data", str(store.path), "--config", str(config), "--out", str(out), "--seed", "0")
    report = json.loads((out / "report.json").read_text())
    losses = [row["train_loss"] for row in report["rows"]]
    assert losses[-1] < 0.5 * losses[0]
    trained = report["best"]["success_rate"]

    env = make_env("pick_cube", obs_mode="state")
    untrained = DiffusionPolicy.load(out / "best")
    untrained.unet.load_state_dict(DiffusionPolicy(untrained.observation_space, 4, untrained.config).unet.state_dict())
    baseline = rollout(untrained, env, 10, seed=1_000_000).success_rate
    assert trained >= 0.5 and trained >= baseline + 0.4, (trained, baseline)

    evaluated = tmp_path / "eval.json"
    _invoke("eval", "--policy", str(out / "best"), "--task", "pick_cube", "-n", "2", "--json", str(evaluated))
    assert json.loads(evaluated.read_text())["episodes"] == 2
    # The actor node loads the run's best checkpoint as a chunked policy with background inference.
    deployed = load_policy(out, asynchronous=True)
    try:
        obs, _ = env.reset(seed=0)
        assert deployed.checkpoint == out / "best" and deployed.kind == "diffusion"
        assert isinstance(deployed.controller, ChunkedExecutor) and deployed.controller.asynchronous
        action = deployed.act(obs)
        assert action.shape == (4,) and np.all(np.abs(action) <= 1.0 + 1e-5)
    finally:
        deployed.close()
        env.close()


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path: Path) -> None:
    """Stopped at step 2 and resumed to 4, the raw and the EMA weights, the learning rate and the losses equal
    those of one sitting: optimiser, schedule, EMA and random streams all come back from last/. (A constant
    schedule: a cosine one decays over the budget, and the first sitting's budget here is 2 steps.)"""
    from safetensors.torch import load_file

    store = _demo_store(tmp_path / "demos.zarr", 3)
    config = tmp_path / "cadence.yaml"
    config.write_text(json.dumps({"diffusion_train": {"eval_every": 0, "warmup_steps": 1, "lr_schedule": "constant_with_warmup"}}))
    common = ["train", "diffusion", "--data", str(store.path), "--debug", "--config", str(config), "--seed", "1"]
    _invoke(*common, "--steps", "4", "--out", str(tmp_path / "once"))
    _invoke(*common, "--steps", "2", "--out", str(tmp_path / "twice"))
    _invoke(*common, "--steps", "4", "--out", str(tmp_path / "twice"))
    once, twice = (json.loads((tmp_path / run / "report.json").read_text()) for run in ("once", "twice"))
    assert [r["step"] for r in twice["rows"]] == [2, 4]
    assert once["rows"] == twice["rows"]
    for name in (MODEL_FILE, "training_state.safetensors"):
        first, second = (load_file(str(tmp_path / run / "last" / name)) for run in ("once", "twice"))
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first), name


def test_ddp_with_two_gloo_processes_matches_one_process_on_the_same_global_batch(tmp_path: Path) -> None:
    import subprocess
    import sys

    from safetensors.torch import load_file

    store = _demo_store(tmp_path / "demos.zarr", 3)
    config = tmp_path / "ddp.yaml"
    config.write_text(json.dumps({"diffusion_train": {"eval_every": 0, "steps": 4}}))
    common = ["train", "diffusion", "--data", str(store.path), "--debug", "--config", str(config), "--seed", "3"]
    _invoke(*common, "--out", str(tmp_path / "one"))
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "tether.cli",
         *common, "--out", str(tmp_path / "two")], capture_output=True, text=True, timeout=300)
    assert launched.returncode == 0, launched.stderr[-2000:]
    one, two = (json.loads((tmp_path / run / "report.json").read_text()) for run in ("one", "two"))
    assert (one["processes"], two["processes"]) == (1, 2)
    assert [r["step"] for r in one["rows"]] == [r["step"] for r in two["rows"]]
    assert [r["train_loss"] for r in two["rows"]] == pytest.approx([r["train_loss"] for r in one["rows"]], rel=1e-4)
    weights = [load_file(str(tmp_path / run / "last" / "training_state.safetensors")) for run in ("one", "two")]
    for name, tensor in weights[0].items():
        if name.startswith("model."):
            assert torch.allclose(tensor, weights[1][name], atol=1e-5), name


def test_device_cuda_is_refused_in_one_line_where_torch_sees_no_gpu_and_nothing_is_written(
    tmp_path: Path, plain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No GPU is lent here: torch's CUDA query is patched to say so, whatever the machine running the test."""
    store = _demo_store(tmp_path / "demos.zarr", 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = runner.invoke(app, ["train", "diffusion", "--data", str(store.path), "--debug", "--device", "cuda",
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "torch sees no CUDA device" in plain(result.output)
    assert not (tmp_path / "run").exists()
    result = runner.invoke(app, ["train", "diffusion", "--data", str(store.path), "--debug", "--device", "tpu",
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "must be cpu or cuda" in plain(result.output)
