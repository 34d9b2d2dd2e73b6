"""The SAC loop over a vector env: K environments step together, one learner.

Per vector step:

    agent.act on each env's observation ──► envs.step(K actions) ──► K transitions into the buffer
    (an ended episode's transition ends in info["final_obs"][i], its true last observation)
    then, once `learning_starts` transitions exist: K agent updates (the UTD per env step of the
    single-env loop, `tether.policies.sac_loop.train_sac`)

The vector env must reset ended episodes in the same step (gymnasium's SAME_STEP autoreset).
Every finished training episode is reported to an optional `EpisodeListener` (the randomisation
curriculum is one); its `log_fields` join each learning-curve point. Steps, evaluations and
checkpoints count environment steps over all envs.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from tqdm import tqdm

from tether.datasets.replay import MixedSampler, ReplayBuffer
from tether.policies.sac import SACAgent
from tether.policies.sac_loop import CHECKPOINT_DIR, LoopConfig, TrainResult, evaluate, write_curve
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
    passed and at the end; writes OUT/checkpoint (every `checkpoint_every` env steps and at the
    end) and OUT/curve.json + curve.png.
    """
    if envs.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
        raise ValueError("train_sac_vector: the vector env must autoreset in the same step (AutoresetMode.SAME_STEP)")
    if len(seeds) != envs.num_envs:
        raise ValueError(f"train_sac_vector: {len(seeds)} seeds for {envs.num_envs} envs")
    action_dim = envs.single_action_space.shape[0]
    if action_dim != agent.action_dim:
        raise ValueError(f"env action_dim {action_dim} differs from the agent's {agent.action_dim}")
    rng = np.random.default_rng(seeds[0])
    online = ReplayBuffer(envs.single_observation_space, action_dim, config.buffer_capacity)
    use_demos = demos is not None and len(demos) > 0 and config.demo_fraction > 0
    sampler = (MixedSampler([online, demos], [1 - config.demo_fraction, config.demo_fraction])
               if use_demos else MixedSampler([online]))
    batch_size = agent.config.utd_ratio * agent.config.batch_size
    updates_at_start = int(agent.critic_updates)
    curve: list[dict[str, Any]] = []
    recent: deque[bool] = deque(maxlen=TRAIN_SUCCESS_WINDOW)
    env_steps = learning_steps = episodes = 0
    update_seconds = 0.0
    next_eval, next_checkpoint = config.eval_every, config.checkpoint_every

    obs, _ = envs.reset(seed=seeds)
    bar = tqdm(total=config.steps, desc=f"sac x{envs.num_envs}", disable=not progress, unit="step")
    while env_steps < config.steps:
        if env_steps < config.random_steps:
            actions = rng.uniform(-1, 1, (envs.num_envs, action_dim)).astype(np.float32)
        else:
            actions = np.stack([agent.act(env_slice(obs, i)) for i in range(envs.num_envs)])
        next_obs, rewards, terminated, truncated, info = envs.step(actions)
        for i in range(envs.num_envs):
            ended = bool(terminated[i] or truncated[i])
            last = info["final_obs"][i] if ended else env_slice(next_obs, i)
            online.add(Transition(env_slice(obs, i), actions[i], float(rewards[i]), last, bool(terminated[i]),
                                  bool(truncated[i]), intervened=False, policy_action=actions[i]))
            if ended:
                episodes += 1
                success = bool(info["final_info"]["success"][i])
                recent.append(success)
                if listener is not None:
                    listener.episode_end(success, env_steps + i + 1)
        obs = next_obs
        env_steps += envs.num_envs
        bar.update(envs.num_envs)

        if len(online) >= config.learning_starts:
            learning_steps += envs.num_envs
            start = time.perf_counter()
            for _ in range(envs.num_envs):
                agent.update(sampler.sample(batch_size, rng, minibatches=agent.config.utd_ratio))
            update_seconds += time.perf_counter() - start

        updates = int(agent.critic_updates) - updates_at_start
        if eval_env is not None and (env_steps >= next_eval or env_steps >= config.steps):
            next_eval += config.eval_every
            result = evaluate(lambda o: agent.act(o, deterministic=True), eval_env, config.eval_episodes,
                              seed=1_000_000 + seeds[0])
            point = {"env_steps": env_steps, "success_rate": result.success_rate, "mean_length": result.mean_length,
                     "train_success_rate": float(np.mean(recent)) if recent else 0.0, "episodes": episodes,
                     "critic_updates": updates, "updates_per_s": updates / update_seconds if update_seconds else 0.0,
                     "utd_achieved": updates / max(learning_steps, 1), "intervention_rate": 0.0,
                     **(listener.log_fields() if listener is not None else {})}
            curve.append(point)
            bar.set_postfix(success=f"{result.success_rate:.2f}")
            logger.info("step %d: eval success %.2f, training success %.2f, %.1f updates/s",
                        env_steps, result.success_rate, point["train_success_rate"], point["updates_per_s"])
            if out_dir is not None:
                write_curve(curve, out_dir, title=f"SAC, {envs.num_envs} envs")
        if out_dir is not None and (env_steps >= next_checkpoint or env_steps >= config.steps):
            next_checkpoint += config.checkpoint_every
            agent.save(out_dir / CHECKPOINT_DIR, extra_config={
                "loop": json.loads(config.model_dump_json()), "env_steps": env_steps, "seed": seeds[0],
                "num_envs": envs.num_envs})
    bar.close()
    return TrainResult(curve=curve, env_steps=env_steps, learning_steps=learning_steps,
                       critic_updates=int(agent.critic_updates) - updates_at_start,
                       update_seconds=update_seconds, interventions=0)
