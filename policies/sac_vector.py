"""The SAC loop over a vector env: K environments step together, one learner.

Per vector step:

    agent.act on each env's observation ──► envs.step(K actions) ──► K transitions into the buffer
    (an ended episode's transition ends in info["final_obs"][i], its true last observation)
    then the learner core (`tether.policies.learner.Learner`) makes the updates owed: one per env
    step once `learning_starts` transitions exist, K per vector step (the UTD per env step of the
    single-env loop, `tether.policies.sac_loop.train_sac`)

The vector env must reset ended episodes in the same step (gymnasium's SAME_STEP autoreset).
Every finished training episode is reported to an optional `EpisodeListener` (the randomisation
curriculum is one); its `log_fields` join each learning-curve point. Steps, evaluations and
checkpoints count environment steps over all envs.
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from tqdm import tqdm

from tether.datasets.replay import ReplayBuffer
from tether.policies.learner import Learner, LoopConfig
from tether.policies.sac import SACAgent
from tether.policies.sac_loop import EVAL_SEEDS, TrainResult, evaluate, write_curve
from tether.types import Observation, Transition

logger = logging.getLogger(__name__)

TRAIN_SUCCESS_WINDOW = 50
"""Training episodes the rolling training success rate of the curve is taken over."""


class EpisodeListener(Protocol):
    """Told of every finished training episode; adds its own fields to the learning curve."""

    def episode_end(self, success: bool, env_steps: int) -> None: ...

    def log_fields(self) -> dict[str, Any]: ...


def env_slice(batch: Observation, index: int) -> Observation:
    """Env `index`'s observation out of a batched one."""
    return {key: value[index] for key, value in batch.items()}


def train_sac_vector(
    agent: SACAgent,
    envs: VectorEnv,
    config: LoopConfig,
    *,
    seeds: list[int],
    demos: ReplayBuffer | None = None,
    eval_env: gym.Env | None = None,
    listener: EpisodeListener | None = None,
    out_dir: Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train `agent` on `envs` (first reset with `seeds`) for `config.steps` env steps; no resume.

    Evaluates the deterministic policy in `eval_env` whenever `eval_every` more env steps have
    passed and at the end; writes the learner's run directory into OUT (checkpoint/ and replay/ every
    `checkpoint_every` env steps and at the end, metrics.jsonl, tensorboard/) and OUT/curve.json + curve.png.
    """
    if envs.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
        raise ValueError("train_sac_vector: the vector env must autoreset in the same step (AutoresetMode.SAME_STEP)")
    if len(seeds) != envs.num_envs:
        raise ValueError(f"train_sac_vector: {len(seeds)} seeds for {envs.num_envs} envs")
    action_dim = envs.single_action_space.shape[0]
    if action_dim != agent.action_dim:
        raise ValueError(f"env action_dim {action_dim} differs from the agent's {agent.action_dim}")
    learner = Learner(agent, config, seed=seeds[0], run_dir=out_dir, demos=demos,
                      fps=envs.metadata.get("render_fps", 10))
    curve: list[dict[str, Any]] = []
    recent: deque[bool] = deque(maxlen=TRAIN_SUCCESS_WINDOW)
    episodes = 0
    next_eval, next_checkpoint = config.eval_every, config.checkpoint_every

    learner.pretrain()
    obs, _ = envs.reset(seed=seeds)
    bar = tqdm(total=config.steps, desc=f"sac x{envs.num_envs}", disable=not progress, unit="step")
    while learner.state.env_steps < config.steps:
        env_steps = learner.state.env_steps
        if env_steps < config.random_steps:
            actions = learner.rng.uniform(-1, 1, (envs.num_envs, action_dim)).astype(np.float32)
        else:
            actions = np.stack([agent.act(env_slice(obs, i)) for i in range(envs.num_envs)])
        next_obs, rewards, terminated, truncated, info = envs.step(actions)
        for i in range(envs.num_envs):
            ended = bool(terminated[i] or truncated[i])
            last = info["final_obs"][i] if ended else env_slice(next_obs, i)
            learner.add(Transition(env_slice(obs, i), actions[i], float(rewards[i]), last, bool(terminated[i]),
                                   bool(truncated[i]), intervened=False, policy_action=actions[i]))
            if ended:
                episodes += 1
                success = bool(info["final_info"]["success"][i])
                recent.append(success)
                if listener is not None:
                    listener.episode_end(success, env_steps + i + 1)
        obs = next_obs
        env_steps = learner.state.env_steps
        bar.update(envs.num_envs)
        while learner.update_if_due() is not None:
            pass

        if eval_env is not None and (env_steps >= next_eval or env_steps >= config.steps):
            next_eval += config.eval_every
            result = evaluate(lambda o: agent.act(o, deterministic=True), eval_env, config.eval_episodes,
                              seed=EVAL_SEEDS + seeds[0])
            point = {"env_steps": env_steps, "success_rate": result.success_rate, "mean_length": result.mean_length,
                     "train_success_rate": float(np.mean(recent)) if recent else 0.0, "episodes": episodes,
                     "critic_updates": learner.critic_updates, "updates_per_s": learner.updates_per_second,
                     "utd_achieved": learner.critic_updates / max(learner.state.learning_steps, 1),
                     "intervention_rate": 0.0, **(listener.log_fields() if listener is not None else {})}
            curve.append(point)
            learner.log({"eval/success_rate": result.success_rate, "eval/mean_length": result.mean_length,
                         "train/success_rate": point["train_success_rate"]})
            bar.set_postfix(success=f"{result.success_rate:.2f}")
            logger.info("step %d: eval success %.2f, training success %.2f, %.1f updates/s",
                        env_steps, result.success_rate, point["train_success_rate"], point["updates_per_s"])
            if out_dir is not None:
                write_curve(curve, out_dir, title=f"SAC, {envs.num_envs} envs")
        if out_dir is not None and (env_steps >= next_checkpoint or env_steps >= config.steps):
            next_checkpoint += config.checkpoint_every
            learner.checkpoint(extra_config={"num_envs": envs.num_envs})
    bar.close()
    learner.flush_metrics()
    learner.close()
    return TrainResult.of(learner, curve)
