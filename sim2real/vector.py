"""Many twin instances at once: gymnasium vector envs of `TwinEnv`.

One env runs in this process (`SyncVectorEnv`); more run one per worker process
(`AsyncVectorEnv`, started by forkserver so workers never inherit the trainer's torch threads).
Episodes reset themselves in the same step they end (gymnasium's SAME_STEP autoreset): the true
last observation of an ended episode is in `info["final_obs"][i]` and its info in
`info["final_info"]`, which is what an off-policy learner needs for the bootstrap.

Env i is seeded with `seeds[i]` at the first reset and then draws its later episodes from its
own generator, so a vector env reproduces, env for env, single envs reset with the same seeds.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import gymnasium as gym
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from tether.config import RandomizationConfig, RigConfig

START_METHOD = "forkserver"


def make_twin_env(
    task: str, rig: str | Path | RigConfig, obs_mode: str = "state", reward: str | None = None,
    ranges: RandomizationConfig | None = None, shaping_discount: float | None = None,
) -> gym.Env:
    """One twin env (picklable for worker processes): `ranges` replace the rig's randomisation if given;
    with `shaping_discount`, the sparse reward plus potential-based shaping (`tether.sim2real.shaping`)."""
    from tether.sim2real.shaping import PotentialShaping
    from tether.sim2real.twin import make_env

    env = make_env(task, rig=rig, obs_mode=obs_mode, reward="sparse" if shaping_discount is not None else reward)
    if ranges is not None:
        env.unwrapped.set_randomization(ranges)
    return env if shaping_discount is None else PotentialShaping(env, shaping_discount)


def make_vector_env(
    task: str, rig: str | Path | RigConfig, num_envs: int, *, obs_mode: str = "state", reward: str | None = None,
    ranges: RandomizationConfig | None = None, shaping_discount: float | None = None, asynchronous: bool | None = None,
) -> VectorEnv:
    """`num_envs` twins of one task (arguments as `make_twin_env`); in worker processes unless `num_envs` is 1
    (or `asynchronous` says)."""
    if num_envs < 1:
        raise ValueError(f"num_envs {num_envs}: need at least one env")
    factory = partial(make_twin_env, task, rig, obs_mode, reward, ranges, shaping_discount)
    if asynchronous if asynchronous is not None else num_envs > 1:
        return AsyncVectorEnv([factory] * num_envs, context=START_METHOD, autoreset_mode=AutoresetMode.SAME_STEP)
    return SyncVectorEnv([factory] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)


def env_seeds(seed: int, num_envs: int) -> list[int]:
    """The first-reset seed of each env: seed, seed + 1, ..."""
    return [seed + i for i in range(num_envs)]


def set_ranges(envs: VectorEnv, ranges: RandomizationConfig) -> None:
    """New randomisation ranges in every env, used from each env's next reset on."""
    envs.call("set_randomization", ranges)
