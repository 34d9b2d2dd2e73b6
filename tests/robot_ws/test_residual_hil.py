"""Residual RL in the HIL loop through the graph: a frozen diffusion base acts, SAC learns its correction.

The base is a small diffusion policy with random weights (what it proposes does not matter here, only that
the actor, learner and recorder handle base + residual correctly); the twin, nodes and messages are real.
"""

import numpy as np
import torch

from tether.cli.sim import run_expert
from tether.config import load_rig
from tether.datasets.store import EpisodeStore
from tether.policies.checkpoint import checkpoint_config
from tether.policies.diffusion import ACTION, DiffusionConfig, DiffusionPolicy
from tether.policies.residual import BASE_ACTION, compose, residual_for
from tether.policies.sac import SACConfig
from tether.policies.sac_loop import LoopConfig
from tether.policies.steering import Steering
from tether.robot_ws.graph import Graph, GraphSpec
from tether.sim2real.twin import make_env
from tether.spaces import gripper_command

SCALE = 0.3
grip = np.vectorize(gripper_command)


def _base_policy(path, space) -> None:
    keys = ("state/tcp_pose", "state/gripper")
    config = DiffusionConfig(down_dims=(16, 32), step_embed_dim=8, inference_steps=2)
    policy = DiffusionPolicy(type(space)({k: space[k] for k in keys}), 4, config)
    rng = np.random.default_rng(0)
    policy.normaliser.fit({"state/tcp_pose": rng.uniform(-1, 1, (64, 7)), "state/gripper": rng.uniform(0, 0.08, (64, 1)),
                           ACTION: rng.uniform(-1, 1, (64, 4))})
    torch.manual_seed(0)
    policy.save(path)


def test_hil_with_a_base_policy_learns_the_residual_and_commands_base_plus_residual(tmp_path):
    env = make_env("pick_cube", obs_mode="state")
    _base_policy(tmp_path / "dp", env.observation_space)
    run_expert("pick_cube", "twin_panda", episodes=2, seed=0, out=tmp_path / "demos.zarr")
    demo_steps = EpisodeStore(tmp_path / "demos.zarr").n_frames
    run_dir = tmp_path / "run"
    spec = GraphSpec(
        rig=load_rig("twin_panda"), nodes=("twin", "arm", "teleop", "actor", "learner", "recorder"),
        obs_mode="state", actor_mode="hil", operator="takeover", store=run_dir / "episodes.zarr", run_dir=run_dir,
        demos=tmp_path / "demos.zarr", time_scale=3.0, steering=Steering(tmp_path / "dp", "residual", SCALE),
        learner_kwargs={"sac": SACConfig(hidden_dims=(32, 32), batch_size=16),
                        "loop": LoopConfig(learning_starts=10, checkpoint_every=40)},
    )
    published, emitted = [], []
    with Graph(spec) as graph:
        actor, learner = graph.node("actor"), graph.node("learner")
        send, emit = actor._publish_action, actor._emit  # instrumented, not replaced: the real calls still run
        actor._publish_action = lambda action, proposal, now: (published.append(action.copy()), send(action, proposal, now))
        actor._emit = lambda prev, *args: (emitted.append(prev), emit(prev, *args))

        # Demos were replayed through the base: each operator action became the residual that reproduces it
        # exactly (beyond the bound where the operator went further: what is stored is what was executed).
        stored = EpisodeStore(tmp_path / "demos.zarr")
        with learner.learner.data_lock:  # interventions join the demo buffer as the graph runs: the demos come first
            demos = [episode for _, episode in zip(range(stored.n_episodes), learner.demos.episodes())]
        assert sum(len(episode) for episode in demos) == demo_steps
        for index, episode in enumerate(demos):
            base, operator = episode.obs[BASE_ACTION], stored.episode(index).action
            assert np.allclose(base[:, :-1] + SCALE * episode.action[:, :-1], operator[:, :-1], atol=1e-5)
            assert np.array_equal(grip(compose(base, episode.action, SCALE)[:, -1]), grip(operator[:, -1]))

        recorder = graph.node("recorder")
        # Until the learner's first weights arrive the operator acts alone; under load that can take episodes.
        # A step is emitted (as a transition) one tick after it is published: wait for an emitted policy step.
        assert graph.wait(lambda: recorder.committed >= 2 and (run_dir / "checkpoint" / "config.json").exists()
                          and any(not step.intervened for step in emitted), timeout_s=300), actor.counters
        assert learner.updates > 0 and actor.weights_version >= 0

    pairs = list(zip(published, emitted))
    assert len(pairs) >= 40
    for executed, step in pairs:
        base = step.obs[BASE_ACTION]
        if step.intervened:  # the operator's command, stored as the residual that reproduces it, unbounded
            assert np.allclose(step.action, residual_for(base, executed, SCALE, bounded=False), atol=1e-6)
        else:  # the policy's residual on top of the base, within the bound
            assert np.allclose(executed, compose(base, step.action, SCALE), atol=1e-6)
            assert np.all(np.abs(executed - base) <= SCALE + 1e-6)
    assert any(step.intervened for _, step in pairs) and not all(step.intervened for _, step in pairs)

    episodes = EpisodeStore(run_dir / "episodes.zarr")
    assert BASE_ACTION in episodes.spec.obs
    saved = checkpoint_config(run_dir / "checkpoint")
    assert Steering.from_checkpoint_config(saved) == Steering((tmp_path / "dp").resolve(), "residual", SCALE)
