"""Vector envs of the twin: worker processes give, env for env, the observations and rewards of single
envs seeded the same (across automatic resets), and new randomisation ranges reach every worker."""

import numpy as np
import pytest
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

from tether.config import load_rig
from tether.sim2real.profiles import profile_ranges
from tether.sim2real.vector import env_seeds, make_twin_env, make_vector_env, set_ranges

RIG = load_rig("twin_panda")
SHORT = RIG.model_copy(update={"task": RIG.task.model_copy(update={"episode_length": 12})})  # resets within the test
STEPS = 30


def single_rollout(task: str, seed: int, actions: np.ndarray, ranges) -> tuple[list[dict], list[float], list[bool]]:
    env = make_twin_env(task, SHORT, reward="dense", ranges=ranges)
    obs, _ = env.reset(seed=seed)
    trace, rewards, ends = [obs], [], []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        ends.append(bool(terminated or truncated))
        if ends[-1]:
            obs, _ = env.reset()
        trace.append(obs)
        rewards.append(reward)
    env.close()
    return trace, rewards, ends


@pytest.mark.parametrize("task", ["reach", "pick_cube"])
def test_vector_env_matches_single_envs_with_the_same_seeds(task):
    ranges = profile_ranges("heavy", RIG)
    envs = make_vector_env(task, SHORT, 2, reward="dense", ranges=ranges)
    dim = envs.single_action_space.shape[0]  # reach's has no gripper part
    actions = np.random.default_rng(1).uniform(-1, 1, (STEPS, 2, dim)).astype(np.float32)
    assert isinstance(envs, AsyncVectorEnv)
    obs, _ = envs.reset(seed=env_seeds(40, 2))
    traces, rewards, ends = [obs], [], []
    for action in actions:
        obs, reward, terminated, truncated, info = envs.step(action)
        traces.append(obs)
        rewards.append(reward)
        ends.append(terminated | truncated)
    envs.close()
    for i, seed in enumerate(env_seeds(40, 2)):
        single, single_rewards, single_ends = single_rollout(task, seed, actions[:, i], ranges)
        assert sum(single_ends) >= 2  # the comparison runs across automatic resets
        assert [bool(e[i]) for e in ends] == single_ends
        np.testing.assert_array_equal([r[i] for r in rewards], single_rewards)
        for step, expected in enumerate(single):
            for key, value in expected.items():
                np.testing.assert_array_equal(traces[step][key][i], value, err_msg=f"env {i} step {step} {key}")
    key = "state/target_pos" if task == "reach" else "state/cube_pos"
    assert not np.array_equal(traces[0][key][0], traces[0][key][1])


def first_obs(ranges, seed: int) -> dict:
    env = make_twin_env("reach", RIG, ranges=ranges)
    obs, _ = env.reset(seed=seed)
    env.close()
    return obs


def test_one_env_runs_in_process_and_new_ranges_reach_every_worker():
    envs = make_vector_env("reach", RIG, 1)
    assert isinstance(envs, SyncVectorEnv)
    envs.close()
    none, heavy = profile_ranges("none", RIG), profile_ranges("heavy", RIG)
    envs = make_vector_env("reach", RIG, 2, ranges=none)
    seeds = env_seeds(7, 2)
    before, _ = envs.reset(seed=seeds)
    set_ranges(envs, heavy)
    after, _ = envs.reset(seed=seeds)
    envs.close()
    for i, seed in enumerate(seeds):
        expected_before, expected_after = first_obs(none, seed), first_obs(heavy, seed)
        assert not np.array_equal(expected_before["state/tcp_pose"], expected_after["state/tcp_pose"])  # noise
        for key in expected_before:
            np.testing.assert_array_equal(before[key][i], expected_before[key])
            np.testing.assert_array_equal(after[key][i], expected_after[key])
