"""The one policy contract: every kind round-trips through `load_policy`, run folders resolve to their policy,
and whatever cannot act is one line naming the folder and the reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tether.cli import main
from tether.policies.checkpoint import CONFIG_FILE, MODEL_FILE, CheckpointError
from tether.policies.diffusion import ACTION, ConditionalUnet1D, DiffusionConfig, DiffusionPolicy, chunked_policy
from tether.policies.networks import EncoderConfig
from tether.policies.registry import LoadedPolicy, find_checkpoint, load_policy
from tether.policies.residual import BASE_ACTION, base_action_space
from tether.policies.reward_classifier import ClassifierConfig, RewardClassifier
from tether.policies.sac import SACAgent, SACConfig
from tether.policies.steering import Steering
from tether.spaces import GRIPPER, TCP_POSE

SCALE = 0.3
HORIZON, N_ACTION_STEPS = 8, 4
SMALL_SAC = SACConfig(hidden_dims=(16, 16))


def _space() -> gym.spaces.Dict:
    return gym.spaces.Dict({TCP_POSE: gym.spaces.Box(-np.inf, np.inf, (7,), np.float32),
                            GRIPPER: gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)})


def _obs(space: gym.spaces.Dict, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {key: rng.uniform(-1, 1, box.shape).astype(np.float32) for key, box in space.spaces.items()}


def _diffusion(path: Path) -> Path:
    """A tiny flow policy (deterministic sampler from a given noise), fitted to random statistics."""
    config = DiffusionConfig(objective="flow", horizon=HORIZON, n_action_steps=N_ACTION_STEPS, down_dims=(16, 32),
                             step_embed_dim=8)
    torch.manual_seed(0)
    policy = DiffusionPolicy(_space(), 4, config)
    rng = np.random.default_rng(0)
    policy.normaliser.fit({TCP_POSE: rng.uniform(-1, 1, (64, 7)), GRIPPER: rng.uniform(0, 0.08, (64, 1)),
                           ACTION: rng.uniform(-1, 1, (64, 4))})
    return policy.save(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One run folder per policy kind, laid out as the trainers write them."""
    root = tmp_path_factory.mktemp("runs")
    base = _diffusion(root / "diffusion" / "best")
    shutil.copytree(base, root / "diffusion" / "last")
    SACAgent(_space(), 4, SMALL_SAC, seed=0).save(root / "sac" / "checkpoint")
    residual_space = gym.spaces.Dict({**_space().spaces, BASE_ACTION: base_action_space(4)})
    SACAgent(residual_space, 4, SMALL_SAC, seed=0).save(
        root / "residual" / "checkpoint",
        extra_config={"base_policy": Steering(base, "residual", SCALE).to_json()})
    noise_sac = SMALL_SAC.model_copy(update={"grasp_critic": False})
    SACAgent(_space(), HORIZON * 4, noise_sac, seed=0).save(
        root / "noise" / "checkpoint", extra_config={"base_policy": Steering(base, "noise", 1.2).to_json()})
    return {kind: root / kind for kind in ("sac", "diffusion", "residual", "noise")}


@pytest.mark.parametrize("kind", ["sac", "diffusion", "residual", "noise"])
def test_every_kind_loads_from_its_run_folder_and_acts_in_the_action_range(runs, kind) -> None:
    policy = load_policy(runs[kind])
    try:
        assert isinstance(policy, LoadedPolicy) and policy.kind == kind
        assert set(policy.observation_keys) == set(_space().spaces)  # a residual reads no base_action from the env
        assert policy.action_space.shape == (4,)  # every kind acts in the env's normalised action space
        for episode in range(2):
            policy.reset()
            for tick in range(N_ACTION_STEPS + 2):  # across a chunk boundary for the chunked kinds
                action = policy.act(_obs(_space(), 10 * episode + tick))
                assert action.shape == (4,) and action.dtype == np.float32
                assert np.all(np.abs(action) <= 1.0 + 1e-6) and np.all(np.isfinite(action))
    finally:
        policy.close()


def test_residual_adds_a_bounded_correction_to_its_own_base(runs) -> None:
    policy = load_policy(runs["residual"])
    base = chunked_policy(DiffusionPolicy.load(runs["diffusion"] / "best"), asynchronous=False)
    for tick in range(6):
        obs = _obs(_space(), tick)
        proposal, action = base.act(obs), policy.act(obs)
        assert np.all(np.abs(action[:-1] - np.clip(proposal[:-1], -1, 1)) <= SCALE + 1e-5)
        assert action[-1] in (proposal[-1], -1.0, 1.0)  # the base's gripper command, or an override of it
    policy.close()


def test_noise_steering_decodes_the_actors_noise_once_per_chunk(runs) -> None:
    policy = load_policy(runs["noise"])
    actor = SACAgent.load(runs["noise"] / "checkpoint")
    base = DiffusionPolicy.load(runs["diffusion"] / "best")
    first, later = _obs(_space(), 0), _obs(_space(), 1)
    noise = 1.2 * np.clip(actor.act(first, deterministic=True), -1, 1).reshape(HORIZON, 4)
    history = {key: np.stack([first[key], first[key]]) for key in base.observation_keys}
    chunk = base.predict_chunk(history, noise=noise)
    acted = [policy.act(first)] + [policy.act(later) for _ in range(N_ACTION_STEPS - 1)]
    assert np.allclose(acted, chunk[:N_ACTION_STEPS], atol=1e-5)  # one noise, one chunk, whatever it observes next


def test_a_diffusion_policy_loads_with_fewer_sampler_steps_and_other_kinds_refuse_them(runs, monkeypatch) -> None:
    """The few-step sampler of a trained checkpoint: its U-Net runs `sampler_steps` times per chunk."""
    calls = []
    forward = ConditionalUnet1D.forward
    monkeypatch.setattr(ConditionalUnet1D, "forward", lambda self, *args: (calls.append(1), forward(self, *args))[1])
    counts = []
    for steps in (None, 3):
        policy = load_policy(runs["diffusion"], sampler_steps=steps)
        calls.clear()
        policy.act(_obs(_space(), 0))  # the first tick plans the first chunk
        policy.close()
        counts.append(len(calls))
    assert counts == [2, 3]  # the checkpoint's flow sampler takes 2 Euler steps
    with pytest.raises(ValueError, match="sampler steps apply to a diffusion policy, not to kind 'sac'"):
        load_policy(runs["sac"], sampler_steps=2)
    with pytest.raises(ValueError, match="sampler steps apply to a diffusion policy, not to kind 'sac'"):
        load_policy(runs["sac"], sampler_steps=2)


def test_run_folders_resolve_to_their_policy(runs, tmp_path) -> None:
    assert find_checkpoint(runs["sac"]) == runs["sac"] / "checkpoint"  # train sac, train sim, train hil
    assert find_checkpoint(runs["diffusion"]) == runs["diffusion"] / "best"  # train diffusion: best before last
    assert find_checkpoint(runs["sac"] / "checkpoint") == runs["sac"] / "checkpoint"
    demo = tmp_path / "demo"  # tether demo: the trained policy one folder down, next to the untrained one
    shutil.copytree(runs["sac"], demo / "hil")
    shutil.copytree(runs["sac"] / "checkpoint", demo / "initial")
    (demo / "demos.zarr" / "data").mkdir(parents=True)
    assert find_checkpoint(demo) == demo / "hil" / "checkpoint"
    assert load_policy(demo).checkpoint == demo / "hil" / "checkpoint"
    shutil.copytree(runs["diffusion"], demo / "diffusion")
    with pytest.raises(CheckpointError, match="holds several runs"):
        find_checkpoint(demo)
    with pytest.raises(CheckpointError, match=r"not a checkpoint folder \(no config.json\) nor a run folder"):
        find_checkpoint(demo / "demos.zarr")


def _one_line(path: Path) -> str:
    with pytest.raises(CheckpointError) as error:
        load_policy(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    return message


def test_what_cannot_act_is_one_line_naming_the_folder_and_the_reason(runs, tmp_path) -> None:
    assert "no such checkpoint folder" in _one_line(tmp_path / "nowhere")
    copy = Path(shutil.copytree(runs["sac"] / "checkpoint", tmp_path / "sac"))
    (copy / MODEL_FILE).unlink()
    assert f"{MODEL_FILE} is missing" in _one_line(copy)

    config = json.loads((runs["sac"] / "checkpoint" / CONFIG_FILE).read_text())
    for name, change, reason in [
        ("unknown", {"kind": "ppo"}, "kind 'ppo' is not a policy kind (known: diffusion, noise, residual, sac)"),
        ("nameless", {"kind": None}, 'no "kind" names the learner'),
        ("sideways", {"base_policy": {"path": "/x", "steer": "sideways", "scale": 1}}, "steer 'sideways'"),
        ("unsaid", {"observation_space": None}, "not a loadable 'sac' policy"),
    ]:
        folder = Path(shutil.copytree(runs["sac"] / "checkpoint", tmp_path / name))
        (folder / CONFIG_FILE).write_text(json.dumps({**config, **change}))
        assert reason in _one_line(folder)

    misfit = Path(shutil.copytree(runs["sac"] / "checkpoint", tmp_path / "misfit"))
    weights = load_file(str(misfit / MODEL_FILE))
    first = sorted(weights)[0]
    save_file({**weights, first: torch.zeros(3, 3)}, str(misfit / MODEL_FILE))  # well-formed, wrong shape
    message = _one_line(misfit)
    assert "not a loadable 'sac' policy (RuntimeError" in message and first in message

    gone = Path(shutil.copytree(runs["residual"] / "checkpoint", tmp_path / "baseless"))
    saved = json.loads((gone / CONFIG_FILE).read_text())
    saved["base_policy"]["path"] = str(tmp_path / "gone")
    (gone / CONFIG_FILE).write_text(json.dumps(saved))
    message = _one_line(gone)
    assert "its base policy" in message and str(tmp_path / "gone") in message

    images = gym.spaces.Dict({"images/front": gym.spaces.Box(0, 255, (24, 24, 3), np.uint8)})
    small = ClassifierConfig(encoder=EncoderConfig(channels=(8, 8), kernels=(3, 3), strides=(2, 1), groups=4,
                                                   latent_dim=16), hidden_dims=(8,))
    classifier = RewardClassifier(images, small).save(tmp_path / "classifier", {"f1": 1.0})
    assert "is a reward classifier" in _one_line(classifier) and "not a policy" in _one_line(classifier)


def test_eval_takes_a_run_folder_through_the_entry_point(runs, tmp_path, capfd) -> None:
    report = tmp_path / "eval.json"
    main_exit = None
    try:
        main(["eval", "--policy", str(runs["sac"]), "--task", "pick_cube", "-n", "1", "--json", str(report)])
    except SystemExit as done:
        main_exit = done.code
    assert main_exit == 0, capfd.readouterr().err
    summary = json.loads(report.read_text())
    assert summary["episodes"] == 1 and summary["lengths"][0] >= 1


@pytest.mark.usefixtures("ros_domain")
@pytest.mark.parametrize("kind", ["diffusion", "residual", "noise"])
def test_the_actor_node_runs_a_chunked_run_folder_on_the_twin(runs, tmp_path, kind) -> None:
    """Deploy through the real graph (twin, arm node, actor, recorder): the actor acts with the diffusion policy
    (and its steering) from nothing but the run folder, and counts the ticks its background inference missed."""
    from tether.cli.deploy import run_deploy
    from tether.config import load_rig
    from tether.datasets.store import EpisodeStore

    rig = load_rig("twin_panda")
    rig = rig.model_copy(update={"task": rig.task.model_copy(update={"episode_length": 2 * N_ACTION_STEPS}),
                                 "cameras": []})
    summary = run_deploy(runs[kind], rig, 1, tmp_path / "deploy.zarr", time_scale=3.0, timeout_s=120, progress=False)
    assert summary["episodes"] == 1 and summary["policy"] == str(find_checkpoint(runs[kind]))
    assert (summary["starved_ticks"] is not None) == (kind == "diffusion") and summary["steps"] >= 1
    episode = EpisodeStore(tmp_path / "deploy.zarr").episode(0)
    assert len(episode) == 2 * N_ACTION_STEPS or summary["outcomes"] == ["success"]
    np.testing.assert_array_equal(episode.action, episode.policy_action)  # executed = the policy's own action
    assert np.all(np.abs(episode.action) <= 1.0 + 1e-6)
