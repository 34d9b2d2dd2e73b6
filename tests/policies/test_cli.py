"""`tether train sac` (debug size: learning, checkpoint, evaluation, resume), `tether eval`, and
`tether train reward-classifier` on a small store."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tether.cli import app
from tether.datasets.store import EpisodeWriter
from tether.policies.reward_classifier import RewardClassifier
from tether.policies.sac import SACAgent

torch.set_num_threads(1)
runner = CliRunner(env={"COLUMNS": "400", "NO_COLOR": "1"})  # error boxes on one line


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_train_sac_debug_then_eval_then_resume(tmp_path) -> None:
    out = tmp_path / "run"
    _invoke("train", "sac", "--debug", "--steps", "60", "--demo-episodes", "1", "--seed", "3", "--out", str(out))
    curve = json.loads((out / "curve.json").read_text())
    assert [p["env_steps"] for p in curve] == [50, 60]
    result = json.loads((out / "result.json").read_text())
    assert result["utd_achieved"] == 4.0 and result["critic_updates"] > 0 and result["demo_transitions"] > 0
    assert (out / "curve.png").is_file() and (out / "checkpoint" / "model.safetensors").is_file()
    best = max(range(len(curve)), key=lambda i: (curve[i]["success_rate"], i))  # ties: the later evaluation
    assert json.loads((out / "best" / "config.json").read_text())["env_steps"] == curve[best]["env_steps"]

    report = tmp_path / "eval.json"
    output = _invoke("eval", "--policy", str(out / "checkpoint"), "--episodes", "1", "--json", str(report))
    assert "success" in output
    summary = json.loads(report.read_text())
    assert summary["episodes"] == 1 and 0.0 <= summary["success_rate"] <= 1.0
    assert summary["mean_length"] > 0 and (tmp_path / "eval_contact_sheet.png").stat().st_size > 0

    # Resume by default: the same command with more steps continues from the checkpoint.
    updates = SACAgent.load(out / "checkpoint").critic_updates.item()
    _invoke("train", "sac", "--debug", "--steps", "80", "--demo-episodes", "1", "--seed", "3", "--out", str(out))
    curve = json.loads((out / "curve.json").read_text())
    assert [p["env_steps"] for p in curve] == [50, 60, 80]
    assert SACAgent.load(out / "checkpoint").critic_updates.item() == updates + 4 * 20  # UTD 4


def test_train_sac_rejects_bad_options(tmp_path) -> None:
    bad = runner.invoke(app, ["train", "sac", "--obs", "depth", "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "'depth': must be state or pixels" in bad.output
    config = tmp_path / "bad.yaml"
    config.write_text("sac:\n  num_critics: 0\n")
    bad = runner.invoke(app, ["train", "sac", "--config", str(config), "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "num_critics" in bad.output and "greater than or equal to 1" in bad.output
    bad = runner.invoke(app, ["train", "sac", "--classifier", str(tmp_path), "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "reads camera images: use --obs pixels" in bad.output
    bad = runner.invoke(app, ["eval", "--policy", str(tmp_path / "missing")])
    assert bad.exit_code != 0 and "no such checkpoint folder" in bad.output


def test_train_reward_classifier_from_a_store(tmp_path) -> None:
    import gymnasium as gym

    camera = "images/front"
    space = gym.spaces.Dict({camera: gym.spaces.Box(0, 255, (16, 16, 3), np.uint8),
                             "state/gripper": gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)})
    rng = np.random.default_rng(0)

    def frame(success: bool) -> dict[str, np.ndarray]:
        image = rng.integers(0, 60, (16, 16, 3), dtype=np.uint8)
        image[2:7, 2:7] = 240 if success else 0
        return {camera: image, "state/gripper": np.zeros(1, np.float32)}

    store = tmp_path / "demos.zarr"
    with EpisodeWriter.create(store, space, 4, fps=10) as writer:
        for episode in range(8):
            success = episode % 4 != 3
            writer.begin_episode(source="scripted", task="pick_cube")
            for t in range(6):
                last = t == 5
                writer.add_step(frame(False), np.zeros(4, np.float32), float(last and success),
                                terminated=last and success, truncated=last and not success, intervened=True)
            writer.end_episode(success=success, final_obs=frame(success))
    config = tmp_path / "clf.yaml"
    config.write_text("classifier:\n  batch_size: 16\n  hidden_dims: [16]\n  encoder:\n    channels: [8, 8]\n"
                      "    kernels: [3, 3]\n    strides: [2, 1]\n    latent_dim: 8\n")
    out = tmp_path / "clf"
    output = _invoke("train", "reward-classifier", "--data", str(store), "--out", str(out), "--steps", "30",
                     "--config", str(config))
    assert "precision" in output and "threshold" in output
    classifier = RewardClassifier.load(out)
    saved = json.loads((out / "config.json").read_text())
    assert saved["report"]["threshold"] == pytest.approx(float(classifier.threshold))
    assert saved["report"]["train_positives"] + saved["report"]["val_positives"] == 6
    bad = runner.invoke(app, ["train", "reward-classifier", "--data", str(tmp_path / "nope.zarr"), "--out", str(out)])
    assert bad.exit_code != 0 and "not a zarr store" in bad.output


def test_train_sac_seeds_the_demo_buffer_from_a_store(tmp_path) -> None:
    from tether.sim2real.twin import make_env
    from tether.sim2real.twin.expert import ScriptedOperator

    env = make_env("pick_cube", obs_mode="state")
    operator = ScriptedOperator(env.unwrapped.rig.teleop.scripted, seed=0)
    store = tmp_path / "demos.zarr"
    with EpisodeWriter.create(store, env.observation_space, 4, fps=10) as writer:
        obs, _ = env.reset(seed=0)
        operator.reset()
        writer.begin_episode(source="scripted", task="pick_cube", seed=0)
        done = False
        while not done:
            action = operator.act(env)
            next_obs, reward, terminated, truncated, info = env.step(action)
            writer.add_step(obs, action, reward, terminated, truncated, intervened=True)
            obs, done = next_obs, terminated or truncated
        writer.end_episode(success=info["success"], final_obs=obs)
        steps = writer.n_frames
    out = tmp_path / "run"
    _invoke("train", "sac", "--debug", "--steps", "30", "--demos", str(store), "--out", str(out))
    assert json.loads((out / "result.json").read_text())["demo_transitions"] == steps
    bad = runner.invoke(app, ["train", "sac", "--obs", "pixels", "--demos", str(store), "--out", str(out)])
    assert bad.exit_code != 0 and "demos.zarr: the replay buffer's spec differs" in bad.output


@pytest.mark.parametrize("threshold, reward", [(0.0, 1.0), (1.1, 0.0)], ids=["always-success", "never-success"])
def test_train_sac_learns_from_the_classifier_reward(tmp_path, threshold: float, reward: float) -> None:
    """With --classifier the learner sees the classifier's reward and episode ends, not the twin's."""
    from tether.datasets.replay_io import load_replay
    from tether.policies.reward_classifier import ClassifierConfig
    from tether.sim2real.twin import make_env

    env = make_env("pick_cube", obs_mode="pixels")
    config = ClassifierConfig.model_validate({"hidden_dims": [8], "encoder": {
        "channels": [4], "kernels": [8], "strides": [8], "groups": 1, "latent_dim": 4}})
    classifier = RewardClassifier(env.observation_space, config)
    classifier.threshold.fill_(threshold)  # 0: every frame counts as success; above 1: none does
    classifier.save(tmp_path / "clf", report={"threshold": threshold})
    env.close()

    out = tmp_path / "run"
    _invoke("train", "sac", "--debug", "--obs", "pixels", "--steps", "12", "--classifier", str(tmp_path / "clf"),
            "--out", str(out))
    online = load_replay(out / "replay" / "online.zarr")
    episodes = list(online.episodes())
    assert sum(len(e.reward) for e in episodes) == 12
    assert all(np.all(e.reward == reward) for e in episodes)
    # always-success: each step ends its episode; never-success: no step ends one (episodes are 100 steps)
    assert [bool(e.terminated[-1]) for e in episodes] == ([True] * 12 if reward else [False])
