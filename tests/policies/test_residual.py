"""Residual RL on a frozen base policy: bounds, the residual env, experts in residual space, the CLI path."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tether.cli import app
from tether.datasets.store import EpisodeWriter
from tether.policies.residual import BASE_ACTION, ResidualEnv, ResidualExpert, compose, residual_for

runner = CliRunner()


class FixedBase:
    """A base policy proposing a constant action and counting episode resets."""

    observation_keys = ("state/tcp_pose",)

    def __init__(self, action: np.ndarray) -> None:
        self.action, self.resets, self.seen = np.asarray(action, np.float32), 0, []

    def reset(self) -> None:
        self.resets += 1

    def act(self, obs) -> np.ndarray:
        self.seen.append(sorted(obs))
        return self.action


def test_composition_stays_within_the_residual_bound_and_the_action_range() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(-1, 1, (1000, 4))
    residual = rng.uniform(-5, 5, (1000, 4))  # out-of-range residuals are clipped first
    executed = compose(base, residual, 0.2)
    assert np.all(np.abs(executed - base) <= 0.2 + 1e-6) and np.all(np.abs(executed) <= 1.0)
    target = np.clip(base + rng.uniform(-0.2, 0.2, (1000, 4)), -1, 1)
    assert np.allclose(compose(base, residual_for(base, target, 0.2), 0.2), target, atol=1e-6)


def test_residual_env_adds_the_base_proposal_and_executes_the_bounded_sum(toy) -> None:
    base = FixedBase([0.9, -0.5, 0.0, -1.0])
    env = ResidualEnv(toy.Env(), base, scale=0.25)
    assert env.observation_space[BASE_ACTION].shape == (4,) and env.action_space.high.tolist() == [1.0] * 4
    obs, _ = env.reset(seed=0)
    assert base.resets == 1 and np.array_equal(obs[BASE_ACTION], base.action)
    assert base.seen[-1] == ["state/tcp_pose"]  # the base sees only its own keys
    _, _, _, _, info = env.step(np.array([1.0, 1.0, -3.0, 0.0], np.float32))
    assert np.allclose(info["executed_action"], [1.0, -0.25, -0.25, -1.0])
    env.reset(seed=1)
    assert base.resets == 2
    with pytest.raises(ValueError, match="residual scale 0"):
        ResidualEnv(toy.Env(), base, scale=0.0)


def test_expert_in_residual_space_reproduces_its_action_when_within_the_bound(toy) -> None:
    base = FixedBase([0.0, 0.0, 0.0, -1.0])
    env = ResidualEnv(toy.Env(), base, scale=2.0)  # a bound of 2 covers any action in [-1, 1]
    env.reset(seed=0)
    expert = toy.Expert()
    wanted = expert.act(env)
    residual = ResidualExpert(expert, env).act(env)
    _, _, _, _, info = env.step(residual)
    assert np.allclose(info["executed_action"], wanted, atol=1e-6)


def test_train_sac_with_a_diffusion_base_policy_learns_a_residual(tmp_path: Path) -> None:
    from tether.sim2real.twin import make_env
    from tether.sim2real.twin.expert import ScriptedOperator

    env = make_env("pick_cube", obs_mode="state")
    operator = ScriptedOperator(env.unwrapped.rig.teleop.scripted, seed=0)
    store = tmp_path / "demos.zarr"
    with EpisodeWriter.create(store, env.observation_space, 4, fps=10) as writer:
        for seed in range(3):
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
    base = tmp_path / "dp"
    result = runner.invoke(app, ["train", "diffusion", "--data", str(store), "--debug", "--out", str(base)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "residual"
    result = runner.invoke(app, ["train", "sac", "--debug", "--steps", "60", "--base-policy", str(base / "best"),
                                 "--residual-scale", "0.3", "--interventions", "scripted",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = json.loads((out / "result.json").read_text())
    assert summary["base_policy"] == str(base / "best") and summary["residual_scale"] == 0.3
    saved = json.loads((out / "checkpoint" / "config.json").read_text())
    assert BASE_ACTION in saved["observation_space"]
    bad = runner.invoke(app, ["train", "sac", "--debug", "--steps", "5", "--base-policy", str(tmp_path / "nope"),
                              "--out", str(tmp_path / "bad")])
    message = " ".join(re.sub(r"[│╭╮╰╯─]", " ", bad.output).split())
    assert bad.exit_code != 0 and "Invalid value for --base-policy" in message and "is missing" in message
