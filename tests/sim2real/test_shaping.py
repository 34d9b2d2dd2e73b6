"""Potential-based shaping telescopes: over an episode (discount 1) the shaped return is the sparse
return minus the start potential, plus the last potential when the episode was cut by time, not ended."""

import numpy as np
import pytest

from tether.config import load_rig
from tether.sim2real.shaping import PotentialShaping, potential
from tether.sim2real.twin.expert import ScriptedOperator
from tether.sim2real.vector import make_twin_env

RIG = load_rig("twin_panda")
SHORT = RIG.model_copy(update={"task": RIG.task.model_copy(update={"episode_length": 8})})


def episode(env, act) -> tuple[float, float, dict, bool]:
    _, info = env.reset(seed=4)
    start, total, done, terminated = potential(info), 0.0, False, False
    while not done:
        _, reward, terminated, truncated, info = env.step(act(env))
        total += reward
        done = terminated or truncated
    return total, start, info, terminated


def test_shaped_return_telescopes_to_the_sparse_one():
    env = make_twin_env("reach", RIG, shaping_discount=1.0)
    operator = ScriptedOperator(RIG.teleop.scripted, seed=0)
    total, start, info, terminated = episode(env, operator.act)
    assert terminated and info["success"]
    assert total == pytest.approx(1.0 - start)

    still = make_twin_env("reach", SHORT, shaping_discount=1.0)
    total, start, info, terminated = episode(still, lambda _: np.zeros(still.action_space.shape, dtype=np.float32))
    assert not terminated and not info["success"]
    assert total == pytest.approx(potential(info) - start)


def test_steps_toward_the_target_pay_at_once():
    env = make_twin_env("reach", RIG, shaping_discount=0.97)
    operator = ScriptedOperator(RIG.teleop.scripted.model_copy(update={"noise_std": 0.0, "hesitate_prob": 0.0,
                                                                        "overshoot": 0.0}), seed=0)
    env.reset(seed=2)
    rewards = [env.step(operator.act(env))[1] for _ in range(3)]
    assert all(r > 0 for r in rewards)


def test_only_a_sparse_env_can_be_shaped():
    with pytest.raises(ValueError, match="sparse"):
        PotentialShaping(make_twin_env("reach", RIG, reward="dense"), 0.97)
