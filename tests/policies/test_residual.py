"""Residual RL on a frozen base policy: bounds, the residual env, experts in residual space, the CLI path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tether.cli import app
from tether.datasets.store import EpisodeWriter
from tether.policies.residual import BASE_ACTION, ResidualEnv, ResidualExpert, compose, residual_for
from tether.spaces import gripper_command
from tether.types import ACTION_TAKEN

gripper_class = np.vectorize(gripper_command)

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
    base = rng.uniform(-1, 1, (1000, 4)).astype(np.float32)
    residual = rng.uniform(-5, 5, (1000, 4))  # out-of-range residuals are clipped first
    executed = compose(base, residual, 0.2)
    assert np.all(np.abs(executed[:, :3] - base[:, :3]) <= 0.2 + 1e-6) and np.all(np.abs(executed) <= 1.0)
    target = np.clip(base + rng.uniform(-0.2, 0.2, (1000, 4)), -1, 1)
    target[:, 3] = rng.choice([-1.0, 1.0], 1000)  # an operator's gripper: open or close
    # Within the bound the residual reproduces the target; a target gripper that means what the base's means is
    # the base's own command (the residual keeps it).
    reproduced = compose(base, residual_for(base, target, 0.2), 0.2)
    assert np.allclose(reproduced[:, :3], target[:, :3], atol=1e-6)
    assert np.array_equal(gripper_class(reproduced[:, 3]), gripper_class(target[:, 3]))
    # A residual cannot say 'hold': a held gripper where the base commands one becomes the base's command.
    assert compose(base[:1], residual_for(base[:1], np.array([[0, 0, 0, 0.0]]), 0.2), 0.2)[0, 3] == base[0, 3]


def test_a_zero_residual_is_the_base_exactly_and_the_gripper_changes_only_on_open_or_close() -> None:
    base = np.array([[0.3, -0.2, 0.1, 0.9], [0.3, -0.2, 0.1, -0.7], [0.3, -0.2, 0.1, 0.2]], np.float32)
    assert np.array_equal(compose(base, np.zeros_like(base), 0.2), base)
    small = np.array([0.0, 0.0, 0.0, 0.4], np.float32)  # below the gripper's threshold: 'stay', the base's command
    assert np.array_equal(compose(base, np.broadcast_to(small, base.shape), 0.2)[:, 3], base[:, 3])
    close = np.array([0.0, 0.0, 0.0, 0.8], np.float32)
    assert compose(base, np.broadcast_to(close, base.shape), 0.2)[:, 3].tolist() == [1.0, 1.0, 1.0]


def test_the_residual_of_an_executed_action_reproduces_it_exactly_beyond_the_bound() -> None:
    base = np.array([0.1, 0.0, -0.2, -1.0], np.float32)
    override = np.array([0.9, -0.8, -0.2, 1.0], np.float32)  # a person's command, far beyond a 0.2 residual
    exact = residual_for(base, override, 0.2, bounded=False)
    assert np.allclose(base[:3] + 0.2 * exact[:3], override[:3], atol=1e-6) and exact[3] == 1.0
    assert np.abs(residual_for(base, override, 0.2)[:3]).max() == 1.0  # bounded: as close as the residual may


def test_residual_env_adds_the_base_proposal_and_executes_the_bounded_sum(toy) -> None:
    base = FixedBase([0.9, -0.5, 0.0, -1.0])
    env = ResidualEnv(toy.Env(), base, scale=0.25)
    assert env.observation_space[BASE_ACTION].shape == (4,) and env.action_space.high.tolist() == [1.0] * 4
    obs, _ = env.reset(seed=0)
    assert base.resets == 1 and np.array_equal(obs[BASE_ACTION], base.action)
    assert base.seen[-1] == ["state/tcp_pose"]  # the base sees only its own keys
    _, _, _, _, info = env.step(np.array([1.0, 1.0, -3.0, 0.0], np.float32))
    assert np.allclose(info["executed_action"], [1.0, -0.25, -0.25, -1.0])
    # What the learner stores: the residual of what was executed (the arm's clip at 1.0 cut the first dimension).
    assert np.allclose(info[ACTION_TAKEN], [0.4, 1.0, -1.0, 0.0])
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


def test_train_sac_with_a_diffusion_base_policy_learns_a_residual(tmp_path: Path, plain) -> None:
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
    message = plain(bad.output)
    assert bad.exit_code != 0 and "Invalid value for --base-policy" in message and "is missing" in message


# --- noise-space steering (DSRL) ---------------------------------------------------------


def _toy_flow_policy(toy):
    from tether.policies.diffusion import DiffusionConfig, DiffusionPolicy

    config = DiffusionConfig(objective="flow", down_dims=(16, 32), step_embed_dim=8)
    policy = DiffusionPolicy(toy.Env().observation_space, 4, config).eval()
    policy.normaliser.fit({"state/tcp_pose": np.array([[-0.5] * 7, [0.5] * 7]),
                           "state/gripper": np.array([[0.0], [1.0]]),
                           "action": np.array([[-1.0] * 4, [1.0] * 4])})
    return policy


def test_noise_steering_executes_the_base_decoding_of_the_chosen_noise_for_one_chunk(toy) -> None:
    from tether.policies.noise_steering import NoiseSteeringEnv

    policy = _toy_flow_policy(toy)
    env = NoiseSteeringEnv(toy.Env(episode_length=20), policy, noise_scale=1.5)
    assert env.action_space.shape == (16 * 4,)
    w = np.random.default_rng(0).uniform(-1, 1, 64).astype(np.float32)
    obs, _ = env.reset(seed=0)
    history = {k: np.stack([obs[k], obs[k]]) for k in policy.observation_keys}
    expected = policy.predict_chunk(history, noise=1.5 * w.reshape(16, 4))[:8]
    _, _, _, _, info = env.step(w)
    assert env.unwrapped.steps == 8 and np.allclose(info["executed_actions"], expected, atol=1e-6)
    env.reset(seed=0)
    assert np.allclose(env.step(w)[4]["executed_actions"], expected, atol=1e-6)  # deterministic sampler
    env.reset(seed=0)
    assert not np.allclose(env.step(-w)[4]["executed_actions"], expected)  # the noise steers the actions
    _, _, terminated, truncated, info = env.step(w)
    _, _, terminated, truncated, info = env.step(w)
    assert truncated and not terminated and len(info["executed_actions"]) == 4  # 20 = 8 + 8 + 4


def test_sac_learns_in_noise_space_through_the_unchanged_loop(toy) -> None:
    from tether.policies.noise_steering import NoiseSteeringEnv
    from tether.policies.sac import SACAgent, SACConfig
    from tether.policies.sac_loop import LoopConfig, train_sac

    env = NoiseSteeringEnv(toy.Env(), _toy_flow_policy(toy))
    agent = SACAgent(env.observation_space, 64, SACConfig(hidden_dims=(32, 32), batch_size=8, grasp_critic=False),
                     seed=0)  # noise has no gripper part (Steering.sac_config switches the grasp critic off too)
    config = LoopConfig(steps=12, learning_starts=4, eval_every=12, eval_episodes=1)
    result = train_sac(agent, env, config, seed=0, eval_env=NoiseSteeringEnv(toy.Env(), _toy_flow_policy(toy)),
                       progress=False)
    assert agent.critic_updates > 0 and result.curve[-1]["env_steps"] == 12
