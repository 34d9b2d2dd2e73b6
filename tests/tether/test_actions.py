"""The one action convention: normalised action, per-period move and twist agree, for both action layouts."""

from __future__ import annotations

import numpy as np
import pytest

from tether.actions import ActionScale
from tether.config import load_rig


@pytest.mark.parametrize("rotation_actions", [False, True])
def test_the_three_forms_of_an_action_agree_and_the_twist_comes_back_to_the_action(rotation_actions: bool) -> None:
    scale = ActionScale(translation=0.02, rotation=0.1, control_dt=0.1, rotation_actions=rotation_actions)
    dim = 7 if rotation_actions else 4
    action = np.random.default_rng(0).uniform(-1, 1, dim).astype(np.float32)
    step, velocity = scale.to_step(action), scale.to_velocity(action)
    assert np.allclose(step[:3], action[:3] * 0.02) and np.allclose(velocity, step / 0.1)
    assert np.allclose(step[3:], action[3:6] * 0.1 if rotation_actions else 0.0)
    back = scale.to_action(velocity, float(action[-1]))
    assert back.dtype == np.float32 and np.array_equal(back, action)
    assert np.abs(scale.to_action(10 * velocity, 1.0)).max() == 1.0  # a faster twist than the range allows is clipped


def test_a_rigs_scale_is_its_action_scale_per_control_period() -> None:
    rig = load_rig("twin_panda")
    scale = ActionScale.of_rig(rig)
    assert (scale.translation, scale.rotation) == tuple(rig.arm.action_scale)
    assert scale.control_dt == rig.control_dt and scale.rotation_actions == rig.arm.rotation_actions
    assert np.isclose(scale.to_velocity(np.array([1.0, 0, 0, 0]))[0], rig.arm.action_scale[0] * rig.arm.control_rate_hz)
