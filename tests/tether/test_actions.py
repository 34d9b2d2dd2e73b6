"""The one action convention: normalised action, per-period move and twist agree, for all four action layouts."""

from __future__ import annotations

import numpy as np
import pytest

from tether.actions import ActionScale, arm_part, gripper_part
from tether.config import load_rig


@pytest.mark.parametrize("rotation_actions", [False, True])
@pytest.mark.parametrize("gripper", [True, False])
def test_the_three_forms_of_an_action_agree_and_the_twist_comes_back_to_the_action(
    rotation_actions: bool, gripper: bool
) -> None:
    scale = ActionScale(translation=0.02, rotation=0.1, control_dt=0.1, rotation_actions=rotation_actions,
                        gripper=gripper)
    assert scale.dim == 3 + 3 * rotation_actions + gripper
    action = np.random.default_rng(0).uniform(-1, 1, scale.dim).astype(np.float32)
    step, velocity = scale.to_step(action), scale.to_velocity(action)
    assert np.allclose(step[:3], action[:3] * 0.02) and np.allclose(velocity, step / 0.1)
    assert np.allclose(step[3:], action[3:6] * 0.1 if rotation_actions else 0.0)
    back = scale.to_action(velocity, float(action[-1]) if gripper else 0.5)
    assert back.dtype == np.float32 and np.array_equal(back, action)
    assert gripper_part(action) == (float(action[-1]) if gripper else None)  # the length alone tells the layout
    assert np.array_equal(arm_part(action), action[: 3 + 3 * rotation_actions])
    assert np.abs(scale.to_action(10 * velocity, 1.0)).max() == 1.0  # a faster twist than the range allows is clipped


def test_a_rigs_scale_is_its_action_scale_per_control_period() -> None:
    rig = load_rig("twin_panda")
    scale = ActionScale.of_rig(rig)
    assert (scale.translation, scale.rotation) == tuple(rig.arm.action_scale)
    assert scale.control_dt == rig.control_dt and scale.rotation_actions == rig.arm.rotation_actions
    assert np.isclose(scale.to_velocity(np.array([1.0, 0, 0, 0]))[0], rig.arm.action_scale[0] * rig.arm.control_rate_hz)


def test_reach_acts_without_a_gripper_and_the_other_tasks_with_one() -> None:
    rig = load_rig("twin_panda")
    assert ActionScale.of_rig(rig).dim == 4  # the rig's own task, pick_cube
    assert ActionScale.of_rig(rig, "reach").dim == 3 and not ActionScale.of_rig(rig, "reach").gripper
    assert ActionScale.of_rig(rig, "peg_insert").dim == 4
