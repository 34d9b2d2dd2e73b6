"""The learner core on its own: mixing per minibatch, intervention labels and RLIF, the update schedule,
exact resume, metrics.jsonl and TensorBoard, and demos from a store that keep only successful episodes."""

from __future__ import annotations

import functools
import logging

import gymnasium as gym
import numpy as np
import pytest

from tether.datasets.replay import ReplayBuffer
from tether.datasets.store import EpisodeWriter
from tether.policies.learner import CHECKPOINT_DIR, DEMO_STORE, ONLINE_STORE, REPLAY_DIR, Learner, LoopConfig
from tether.policies.networks import EncoderConfig
from tether.policies.metrics import TENSORBOARD_DIR, read_metrics
from tether.policies.sac import SACAgent, SACConfig
from tether.policies.sac_loop import collect_demos
from tether.types import Transition

SMALL = SACConfig(hidden_dims=(32, 32), batch_size=8, utd_ratio=1, critic_actor_ratio=1)
HUMAN = np.array([0.5, 0.5, 0.5, -1.0], np.float32)


def _stream(toy, steps: int, *, seed: int = 0, intervened=lambda step: False) -> list[Transition]:
    """`steps` transitions of the toy env under fixed random proposals; `intervened(step)` marks human steps."""
    env, rng = toy.Env(), np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out, episode = [], 0
    for step in range(steps):
        proposal = rng.uniform(-1, 1, 4).astype(np.float32)
        human = intervened(step)
        action = HUMAN if human else proposal
        next_obs, reward, terminated, truncated, _ = env.step(action)
        out.append(Transition(obs, action, float(reward), next_obs, terminated, truncated, human, proposal))
        obs = next_obs
        if terminated or truncated:
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
    return out


def _learner(toy, config: LoopConfig, *, seed: int = 0, sac: SACConfig = SMALL, space=None, **kwargs) -> Learner:
    space = space or toy.Env().observation_space
    return Learner(SACAgent(space, 4, sac, seed=seed), config, seed=0, **kwargs)


FROZEN_CAMERA = SMALL.model_copy(update={"encoder": EncoderConfig(
    channels=(8, 8), kernels=(3, 3), strides=(2, 1), groups=4, latent_dim=8, freeze_backbone=True)})


def _with_camera(transitions: list[Transition]) -> list[Transition]:
    """The toy's transitions with a 16x16 camera whose picture follows the TCP (every obs dict gets one once)."""
    for transition in transitions:
        for obs in (transition.obs, transition.next_obs):
            if "images/front" not in obs:
                x, y = (np.clip(obs["state/tcp_pose"][:2], -0.5, 0.5) * 14 + 8).astype(int)
                image = np.zeros((16, 16, 3), np.uint8)
                image[y, x] = 255
                obs["images/front"] = image
    return transitions


@pytest.mark.parametrize("fraction", [0.5, 0.25])
def test_every_minibatch_holds_the_demo_share(toy, fraction: float) -> None:
    env = toy.Env()
    demos = ReplayBuffer(env.observation_space, 4, 1000)
    collect_demos(env, toy.Expert(), 2, demos, seed=0)
    learner = _learner(toy, LoopConfig(learning_starts=5, demo_fraction=fraction), demos=demos,
                       sac=SMALL.model_copy(update={"utd_ratio": 4}))
    seen = []
    update = learner.agent.update
    learner.agent.update = lambda batch: seen.append(batch) or update(batch)
    for transition in _stream(toy, 10):
        learner.add(transition)
        learner.update_if_due()
    assert learner.update_if_due() is None  # paid up: one update per step from the 5th on
    assert len(seen) == 6 and learner.state.learning_steps == learner.state.updates == 6
    assert learner.critic_updates == 24 and learner.utd_achieved == 4.0
    for batch in seen:  # online rows are never intervened here, demo rows always: the flag counts the demo share
        per_minibatch = batch.intervened.reshape(4, 8).sum(axis=1)
        assert per_minibatch.tolist() == [8 * fraction] * 4


def test_pretraining_runs_once_on_demos_alone_before_the_first_online_update(toy, tmp_path) -> None:
    env = toy.Env()
    demos = ReplayBuffer(env.observation_space, 4, 1000)
    collect_demos(env, toy.Expert(), 2, demos, seed=0)
    config = LoopConfig(learning_starts=5, pretrain_updates=7)
    learner = _learner(toy, config, demos=demos, run_dir=tmp_path / "run", tensorboard=False)
    seen = []
    update = learner.agent.update
    learner.agent.update = lambda batch: seen.append(batch) or update(batch)
    for step, transition in enumerate(_stream(toy, 8)):
        learner.add(transition)
        learner.update_if_due()
        if step < 4:  # no online update owed yet: no pretraining either
            assert not seen
    # 7 demo-only updates first (every row intervened, the demo buffer's mark), then the 4 owed online ones.
    assert len(seen) == 11 and all(batch.intervened.all() for batch in seen[:7])
    assert not any(batch.intervened.all() for batch in seen[7:])
    assert learner.state.updates == 4 and learner.critic_updates == 4  # rates count online updates only
    assert int(learner.agent.critic_updates) == 11 and learner.state.pretrained
    learner.checkpoint()
    resumed = _learner(toy, config, run_dir=tmp_path / "run", tensorboard=False)
    resumed.resume()
    resumed.pretrain()
    assert int(resumed.agent.critic_updates) == 11  # a resumed run does not pretrain again


def test_interventions_are_demos_and_rlif_penalises_each_takeover(toy) -> None:
    learner = _learner(toy, LoopConfig(learning_starts=10_000, rlif_penalty=2.0))
    # Human steps: 3-5 (one takeover), 28-31 across the episode end at step 29 (two takeovers: the episode end
    # starts a new one), and 40 without a policy proposal (a teleop-only step: no proposal to penalise).
    human = {3, 4, 5, 28, 29, 30, 31}
    stream = _stream(toy, 45, intervened=lambda s: s in human)
    stream[40] = Transition(stream[40].obs, HUMAN, stream[40].reward, stream[40].next_obs, stream[40].terminated,
                            stream[40].truncated, True, None)
    for transition in stream:
        learner.add(transition)
    assert learner.state.interventions == 8 and len(learner.demos) == 8
    rows = [t for episode in learner.online.episodes() for t in episode.transitions()]
    penalties = [t for t in rows if t.reward == -2.0]
    assert len(penalties) == 3 and all(t.terminated and not t.intervened for t in penalties)
    proposals = {3: stream[3].policy_action, 28: stream[28].policy_action, 30: stream[30].policy_action}
    assert sorted(t.action.tolist() for t in penalties) == sorted(p.tolist() for p in proposals.values())
    assert len(learner.online) == 45 + 3 and learner.updates_owed == 0
    demo_rows = [t for episode in learner.demos.episodes() for t in episode.transitions()]
    assert all(t.intervened and np.allclose(t.action, HUMAN) for t in demo_rows)


def test_rlif_alone_keeps_only_the_takeover_penalty_as_reward(toy) -> None:
    """task_reward False: demos and online steps lose the task's reward (the toy pays 1 on success); each
    takeover's rejected proposal still costs rlif_penalty."""
    env = toy.Env()
    demos = ReplayBuffer(env.observation_space, 4, 1000)
    collect_demos(env, toy.Expert(), 2, demos, seed=0)
    assert any(t.reward > 0 for episode in demos.episodes() for t in episode.transitions())
    learner = _learner(toy, LoopConfig(learning_starts=10_000, rlif_penalty=1.0, task_reward=False), demos=demos)
    expert = toy.Expert()
    obs, _ = env.reset(seed=0)
    terminated = truncated = False
    for step in range(30):  # the expert takes over at step 5 and solves the task: a rewarded success
        proposal = np.zeros(4, np.float32)
        human = step >= 5
        action = expert.act(env) if human else proposal
        next_obs, reward, terminated, truncated, _ = env.step(action)
        learner.add(Transition(obs, action, float(reward), next_obs, terminated, truncated, human, proposal))
        obs = next_obs
        if terminated or truncated:
            break
    assert terminated
    rewards = [t.reward for buffer in (learner.online, learner.demos)
               for episode in buffer.episodes() for t in episode.transitions()]
    assert sorted(set(rewards)) == [-1.0, 0.0] and rewards.count(-1.0) == 1


@pytest.mark.parametrize("camera", [False, True], ids=["state", "frozen-camera"])
def test_interrupted_and_resumed_learner_matches_the_uninterrupted_one(toy, tmp_path, camera: bool) -> None:
    """A learner checkpointed at step 40, rebuilt from scratch (another agent seed) and resumed, ends with the
    weights, optimiser state and buffers of one that ran straight through (CPU). With a frozen camera encoder
    the buffers cache features and the checkpoint keeps images: the resumed learner re-encodes them."""
    config = LoopConfig(learning_starts=10, rlif_penalty=1.0, metrics_every=5)
    stream = _stream(toy, 80, intervened=lambda s: s % 13 in (4, 5, 6))
    build = _learner
    if camera:
        stream = _with_camera(stream)
        space = gym.spaces.Dict({**toy.Env().observation_space.spaces,
                                 "images/front": gym.spaces.Box(0, 255, (16, 16, 3), np.uint8)})
        build = functools.partial(_learner, sac=FROZEN_CAMERA, space=space)

    def drive(learner: Learner, transitions: list[Transition]) -> None:
        for transition in transitions:
            learner.add(transition)
            learner.update_if_due()

    straight = build(toy, config, run_dir=tmp_path / "straight", tensorboard=False)
    drive(straight, stream)
    first = build(toy, config, run_dir=tmp_path / "resumed", tensorboard=False)
    drive(first, stream[:40])
    first.checkpoint(driver_state={"note": "mine"})
    assert (tmp_path / "resumed" / CHECKPOINT_DIR / "model.safetensors").is_file()
    assert (tmp_path / "resumed" / REPLAY_DIR / ONLINE_STORE).is_dir()
    assert (tmp_path / "resumed" / REPLAY_DIR / DEMO_STORE).is_dir()
    resumed = build(toy, config, seed=99, run_dir=tmp_path / "resumed", tensorboard=False)
    assert resumed.resume() == {"note": "mine"}
    assert resumed.state.env_steps == 40
    drive(resumed, stream[40:])

    counters = ("env_steps", "learning_steps", "updates", "interventions")
    assert [getattr(resumed.state, c) for c in counters] == [getattr(straight.state, c) for c in counters]
    assert resumed.rng.bit_generator.state == straight.rng.bit_generator.state
    # Re-encoding a buffer runs the frozen trunk on chunks of frames where the straight run encoded one frame
    # at a time; the convolutions' sums then round differently in the last bit, and nothing else differs.
    same = functools.partial(np.testing.assert_allclose, rtol=1e-4, atol=1e-6) if camera else np.testing.assert_array_equal
    for name, value in straight.agent.state_dict().items():
        same(value.numpy(), resumed.agent.state_dict()[name].numpy(), err_msg=name)
    for name, optimizer in straight.agent._optimizers().items():
        other = resumed.agent._optimizers()[name].state_dict()["state"]
        for index, moments in optimizer.state_dict()["state"].items():
            for key, value in moments.items():
                same(value.numpy(), other[index][key].numpy(), err_msg=name)
    for ours, theirs in ((straight.online, resumed.online), (straight.demos, resumed.demos)):
        a, b = list(ours.episodes()), list(theirs.episodes())
        assert len(a) == len(b) and all(np.array_equal(x.action, y.action) for x, y in zip(a, b, strict=True))
    assert build(toy, config, run_dir=tmp_path / "empty").resume() is None
    if camera:
        batch = resumed.online.sample(4, np.random.default_rng(0))
        assert "images/front" not in batch.obs and batch.obs["cached/images/front"].shape == (4, 16)


def test_metrics_jsonl_and_tensorboard_hold_the_named_scalars(toy, tmp_path) -> None:
    from tether.policies.sac_loop import train_sac

    run = tmp_path / "run"
    config = LoopConfig(steps=40, learning_starts=10, eval_every=20, eval_episodes=1, metrics_every=10)
    agent = SACAgent(toy.Env().observation_space, 4, SMALL, seed=0)
    train_sac(agent, toy.Env(), config, seed=0, eval_env=toy.Env(), out_dir=run, progress=False)
    records = read_metrics(run)
    updates = [r for r in records if "critic_loss" in r]
    assert [r["step"] for r in updates] == [19, 29, 39, 40]  # every 10 updates, and the rest at the end
    for name in ("critic_loss", "q_mean", "actor_loss", "alpha", "entropy", "temperature_loss", "updates_per_s",
                 "env_steps_per_s", "intervention_rate", "critic_updates"):
        assert all(isinstance(r[name], float) for r in updates), name
    assert updates[-1]["critic_updates"] == 31.0 and updates[0]["intervention_rate"] == 0.0
    assert all(r["updates_per_s"] > 0 and r["env_steps_per_s"] > 0 for r in updates)
    evaluations = [r for r in records if "eval/success_rate" in r]
    assert [r["step"] for r in evaluations] == [20, 40] and all(0 <= r["eval/success_rate"] <= 1 for r in evaluations)
    assert any(path.name.startswith("events.out.tfevents") for path in (run / TENSORBOARD_DIR).iterdir())


def test_failed_and_unlabelled_demos_never_enter_the_demo_buffer(toy, tmp_path, caplog) -> None:
    env = toy.Env()
    store = tmp_path / "demos.zarr"
    outcomes = [True, False, None, True]
    with EpisodeWriter.create(store, env.observation_space, 4, fps=10) as writer:
        for index, success in enumerate(outcomes):
            obs, _ = env.reset(seed=index)
            writer.begin_episode(source="teleop", task="reach")
            for _ in range(5):  # the action marks the episode it came from
                next_obs, *_ = env.step(np.full(4, index / 10, np.float32))
                writer.add_step(obs, np.full(4, index / 10, np.float32), 0.0, False, False, intervened=True)
                obs = next_obs
            writer.end_episode(success=success, final_obs=obs)
    learner = _learner(toy, LoopConfig(), run_dir=tmp_path / "run", tensorboard=False)
    with caplog.at_level(logging.INFO, logger="tether.policies.learner"):
        loaded = learner.add_demos(store)
    assert (loaded.episodes, loaded.transitions, loaded.skipped) == (2, 10, 2)
    kept = sorted({round(float(e.action[0, 0]), 2) for e in learner.demos.episodes()})
    assert kept == [0.0, 0.3] and len(learner.demos) == 10
    assert "2 failed or unlabelled episodes skipped" in caplog.text
    record = read_metrics(tmp_path / "run")[-1]
    assert (record["demo_episodes"], record["demo_episodes_skipped"], record["demo_transitions"]) == (2, 2, 10)
    assert learner.state.demos_skipped == 2
