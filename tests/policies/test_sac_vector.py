"""The vector SAC loop: every env's episode ends reach the listener at the right env step, the learner
gets one update per env step once learning starts, and evaluation points carry the listener's fields."""

from __future__ import annotations

import torch

from tether.config import load_rig
from tether.policies.sac import SACAgent, SACConfig
from tether.policies.sac_loop import LoopConfig
from tether.policies.sac_vector import train_sac_vector
from tether.sim2real.vector import make_twin_env, make_vector_env

torch.set_num_threads(1)
RIG = load_rig("twin_panda")
SHORT = RIG.model_copy(update={"task": RIG.task.model_copy(update={"episode_length": 5})})


class Recorder:
    def __init__(self) -> None:
        self.ends: list[tuple[bool, int]] = []

    def episode_end(self, success: bool, env_steps: int) -> None:
        self.ends.append((success, env_steps))

    def log_fields(self) -> dict:
        return {"episodes_seen": len(self.ends)}


def test_episode_ends_updates_and_curve(tmp_path):
    envs = make_vector_env("reach", SHORT, 2, asynchronous=False)
    eval_env = make_twin_env("reach", SHORT)
    sac = SACConfig(hidden_dims=(32, 32), batch_size=8, utd_ratio=1, critic_actor_ratio=1, grasp_critic=False)
    agent = SACAgent(envs.single_observation_space, envs.single_action_space.shape[0], sac, seed=0)
    config = LoopConfig(steps=30, learning_starts=10, eval_every=20, eval_episodes=1, checkpoint_every=1000)
    listener = Recorder()
    result = train_sac_vector(agent, envs, config, seeds=[3, 4], eval_env=eval_env, listener=listener,
                              out_dir=tmp_path, progress=False)
    envs.close()
    # Random targets are not reached by an untrained policy in 5 steps: every episode is truncated, both envs
    # end together every 5 vector steps (10 env steps), and env i's end is counted at its own env step.
    assert listener.ends == [(False, s) for k in range(1, 4) for s in (10 * k - 1, 10 * k)]
    # One update per env step from the one that brings the buffer to learning_starts (the 10th) on: 21.
    assert result.env_steps == 30 and result.learning_steps == 21 and result.critic_updates == 21
    assert [p["env_steps"] for p in result.curve] == [20, 30]
    assert [p["episodes_seen"] for p in result.curve] == [4, 6]
    assert (tmp_path / "checkpoint" / "model.safetensors").is_file() and (tmp_path / "curve.json").is_file()
    assert (tmp_path / "replay" / "online.zarr").is_dir() and (tmp_path / "metrics.jsonl").is_file()
