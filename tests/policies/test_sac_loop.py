"""The online loop on a tiny env: intervention rule, buffer routing, RLIF, batch mixing, UTD, outputs."""

from __future__ import annotations

import json
import time

import gymnasium as gym
import numpy as np
import pytest
import torch

from tether.datasets.replay import ReplayBuffer
from tether.types import ACTION_TAKEN
from tether.policies.sac import SACAgent, SACConfig
from tether.policies.sac_loop import (
    CHECKPOINT_DIR,
    CURVE_JSON,
    CURVE_PNG,
    ExpertTakeover,
    LoopConfig,
    collect_demos,
    evaluate,
    train_sac,
)

SMALL = SACConfig(hidden_dims=(32, 32), batch_size=16, utd_ratio=1, critic_actor_ratio=1)


class FixedExpert:
    def __init__(self, action: np.ndarray) -> None:
        self.action, self.resets = action, 0

    def reset(self) -> None:
        self.resets += 1

    def act(self, env: object) -> np.ndarray:
        return self.action


def test_expert_takes_over_by_the_takeover_rule_and_acts_for_it() -> None:
    wanted = np.array([1.0, 0.0, 0.0, -1.0], np.float32)
    expert = FixedExpert(wanted)
    rule = ExpertTakeover(expert, env=None, threshold=0.5, patience=3, hold_steps=2)
    close = np.array([0.9, 0.1, 0.0, -1.0], np.float32)
    far = np.array([-1.0, 0.0, 0.0, -1.0], np.float32)
    assert [rule({}, close) for _ in range(5)] == [None] * 5
    decisions = [rule({}, far) for _ in range(7)]
    assert [d is not None for d in decisions] == [False, False, True, True, False, False, True]
    np.testing.assert_array_equal(decisions[2], wanted)
    rule.reset()  # a new episode resets the expert and the rule's count
    assert expert.resets == 1 and rule({}, far) is None
    with pytest.raises(ValueError, match="need threshold > 0"):
        ExpertTakeover(expert, env=None, threshold=0)


class AlwaysTakeOver:
    """Intervenes at steps 1, 4-5, 8-9, ... (count % 4 in {0, 1}) with a fixed action, to check routing."""

    def __init__(self) -> None:
        self.count = 0

    def reset(self) -> None:
        pass

    def __call__(self, obs, proposal):
        self.count += 1
        return np.array([0.5, 0.5, 0.5, -1.0], np.float32) if self.count % 4 in (0, 1) else None


def _run(toy, config: LoopConfig, **kwargs):
    env = toy.Env()
    online = ReplayBuffer(env.observation_space, 4, 1000)
    demos = ReplayBuffer(env.observation_space, 4, 1000)
    agent = SACAgent(env.observation_space, 4, kwargs.pop("sac", SMALL), seed=0)
    result = train_sac(agent, env, config, seed=0, online=online, demos=demos, progress=False, **kwargs)
    return result, online, demos, agent


def test_interventions_go_to_both_buffers_and_rlif_penalises_the_takeover(toy) -> None:
    config = LoopConfig(steps=40, learning_starts=1000, rlif_penalty=1.0)  # no updates: routing only
    result, online, demos, _ = _run(toy, config, intervention=AlwaysTakeOver())
    assert result.interventions == 20 and len(demos) == 20
    transitions = [t for episode in online.episodes() for t in episode.transitions()]
    intervened = [t for t in transitions if t.intervened]
    assert len(intervened) == 20 and all(np.allclose(t.action, [0.5, 0.5, 0.5, -1]) for t in intervened)
    penalties = [t for t in transitions if t.reward == -1.0]
    assert len(penalties) == 11  # one per takeover: steps 1, 4-5, 8-9, ..., 36-37, 40 are 11 runs
    assert all(t.terminated and not t.intervened for t in penalties)
    assert all(not np.allclose(t.action, [0.5, 0.5, 0.5, -1]) for t in penalties)  # the rejected proposal
    assert len(online) == 40 + 11


class HalvingEnv(gym.Wrapper):
    """Executes half of every action it is given and says so, as a bounded or clipped env does."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(0.5 * action)
        return obs, reward, terminated, truncated, {**info, ACTION_TAKEN: 0.5 * np.asarray(action, np.float32)}


def test_the_loop_stores_the_action_an_env_says_it_executed(toy) -> None:
    env = HalvingEnv(toy.Env())
    online = ReplayBuffer(env.observation_space, 4, 1000)
    demos = ReplayBuffer(env.observation_space, 4, 1000)
    collect_demos(env, toy.Expert(), 1, demos, seed=0, successful_only=False)
    agent = SACAgent(env.observation_space, 4, SMALL, seed=0)
    train_sac(agent, env, LoopConfig(steps=20, learning_starts=1000), seed=0, online=online, progress=False)
    for buffer in (online, demos):
        transitions = [t for episode in buffer.episodes() for t in episode.transitions()]
        assert transitions and all(np.allclose(t.action, 0.5 * t.policy_action) for t in transitions
                                   if t.policy_action is not None and not np.isnan(t.policy_action).any())
    online_steps = [t for episode in online.episodes() for t in episode.transitions()]
    assert all(np.abs(t.action).max() <= 0.5 for t in online_steps)  # never the proposal itself
    demo_steps = [t for episode in demos.episodes() for t in episode.transitions()]
    assert all(np.abs(t.action[:3]).max() <= 0.5 for t in demo_steps)


@pytest.mark.parametrize("fraction", [0.5, 0.25])
def test_batches_mix_online_and_demo_transitions_by_fraction(toy, fraction: float) -> None:
    env = toy.Env()
    demos = ReplayBuffer(env.observation_space, 4, 1000)
    collect_demos(env, toy.Expert(), 3, demos, seed=0)
    assert all(t.intervened for e in demos.episodes() for t in e.transitions())
    agent = SACAgent(env.observation_space, 4, SMALL.model_copy(update={"utd_ratio": 2}), seed=0)
    seen = []
    update = agent.update
    agent.update = lambda batch: seen.append(batch) or update(batch)
    config = LoopConfig(steps=12, learning_starts=5, demo_fraction=fraction)
    result = train_sac(agent, env, config, seed=0, demos=demos, progress=False)
    assert len(seen) == 8 and all(len(b.action) == 32 for b in seen)
    # Online transitions are never intervened here, demo ones always: the flag counts the demo share.
    assert all(b.intervened.sum() == 32 * fraction for b in seen)
    assert (result.critic_updates, result.learning_steps, result.utd_achieved) == (16, 8, 2.0)


def test_loop_writes_curve_checkpoint_and_evaluates(toy, tmp_path) -> None:
    config = LoopConfig(steps=30, learning_starts=10, eval_every=10, eval_episodes=2, checkpoint_every=15)
    result, _, _, agent = _run(toy, config, eval_env=toy.Env(), out_dir=tmp_path)
    assert [p["env_steps"] for p in result.curve] == [10, 20, 30]
    assert json.loads((tmp_path / CURVE_JSON).read_text()) == result.curve
    assert (tmp_path / CURVE_PNG).stat().st_size > 0
    saved = json.loads((tmp_path / CHECKPOINT_DIR / "config.json").read_text())
    assert saved["env_steps"] == 30 and saved["critic_updates"] == int(agent.critic_updates) == 21
    assert result.curve[-1]["utd_achieved"] == 1.0


def test_evaluate_counts_successes_and_lengths(toy) -> None:
    env, expert = toy.Env(), toy.Expert()
    result = evaluate(lambda obs: expert.act(env), env, 3, seed=0)
    assert result.success_rate == 1.0 and all(length < env.episode_length for length in result.lengths)
    idle = evaluate(lambda obs: np.zeros(4, np.float32), env, 2, seed=0)
    assert idle.success_rate == 0.0 and idle.lengths == [env.episode_length] * 2
    with pytest.raises(ValueError, match="env.render\\(\\) returned None"):
        evaluate(lambda obs: np.zeros(4, np.float32), env, 1, seed=0, record=True)


class NoisyExpert:
    """The toy expert with randomness of its own (as the twin's scripted operator has), drawn at reset and per step."""

    def __init__(self, toy_expert, seed: int) -> None:
        self.inner, self.rng = toy_expert, np.random.default_rng(seed)

    def reset(self) -> None:
        self.offset = self.rng.normal(0.0, 0.3, size=3)

    def act(self, env) -> np.ndarray:
        action = self.inner.act(env)
        action[:3] += self.offset + self.rng.normal(0.0, 0.1, size=3)
        return action


class EpisodeEnds(gym.Wrapper):
    """Notes the environment step at which each episode ends."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps: list[int] = []
        self._count = 0

    def step(self, action):
        result = super().step(action)
        self._count += 1
        if result[2] or result[3]:
            self.steps.append(self._count)
        return result


@pytest.mark.parametrize("intervening", [False, True], ids=["no-interventions", "noisy-expert-intervenes"])
def test_interrupted_run_resumes_exactly(toy, tmp_path, intervening: bool) -> None:
    """Stop at an episode end (the toy truncates at 30 steps), resume, and match the straight run,
    also when a noisy expert takes over (its RNG is checkpointed with the loop)."""
    config = LoopConfig(steps=90, learning_starts=10, eval_every=30, eval_episodes=1, checkpoint_every=30)
    env, demos_env = toy.Env(), toy.Env()
    demos = ReplayBuffer(env.observation_space, 4, 1000)
    collect_demos(demos_env, toy.Expert(), 2, demos, seed=0)

    def fresh_demos() -> ReplayBuffer:
        copy = ReplayBuffer(env.observation_space, 4, 1000)
        for episode in demos.episodes():
            copy.add_episode(episode)
        return copy

    def takeover(run_env):
        # threshold 0.3: the untrained policy strays often, so the expert takes over in every episode
        return ExpertTakeover(NoisyExpert(toy.Expert(), seed=7), run_env, threshold=0.3) if intervening else None

    straight = SACAgent(env.observation_space, 4, SMALL, seed=0)
    episode_ends = EpisodeEnds(env)
    expected = train_sac(straight, episode_ends, config, seed=0, demos=fresh_demos(), eval_env=toy.Env(),
                         intervention=takeover(episode_ends), out_dir=tmp_path / "straight", progress=False)
    assert (expected.interventions > 0) == intervening
    # The expert reaches the goal early, so episodes end off the 30-step grid: stop at a real episode end.
    stop = next(step for step in episode_ends.steps if step >= 40)

    first_env, resumed_env = toy.Env(), toy.Env()
    first = SACAgent(env.observation_space, 4, SMALL, seed=0)
    first_sitting = train_sac(first, first_env, config.model_copy(update={"steps": stop}), seed=0,
                              demos=fresh_demos(), eval_env=toy.Env(), intervention=takeover(first_env),
                              out_dir=tmp_path / "resumed", progress=False)
    resumed = SACAgent(env.observation_space, 4, SMALL, seed=99)  # weights and RNG come from the checkpoint
    started = time.perf_counter()
    result = train_sac(resumed, resumed_env, config, seed=0, demos=fresh_demos(), eval_env=toy.Env(),
                       intervention=takeover(resumed_env), out_dir=tmp_path / "resumed", resume=True,
                       progress=False)
    second_sitting_s = time.perf_counter() - started

    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    # A run's wall time adds up over its sittings.
    first_wall_s = first_sitting.curve[-1]["wall_s"]
    assert first_wall_s < result.curve[-1]["wall_s"] <= first_wall_s + second_sitting_s
    drop = ("updates_per_s", "wall_s")  # wall-clock
    # The interrupted run also evaluated at its last step, off the eval grid; compare on the grid.
    on_grid = lambda curve: [{k: v for k, v in p.items() if k not in drop} for p in curve  # noqa: E731
                             if p["env_steps"] % config.eval_every == 0 or p["env_steps"] == config.steps]
    assert on_grid(result.curve) == on_grid(expected.curve)
    assert (result.env_steps, result.critic_updates) == (expected.env_steps, expected.critic_updates)
    assert result.interventions == expected.interventions
