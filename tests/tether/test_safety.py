"""The command limits both the arm node and the twin apply."""

import numpy as np
import pytest

from tether.config import Box
from tether.safety import MAX_LEAD_STEPS, UnsafeCommand, check_finite, limit_norm, translation_target

BOX = Box(low=(0.3, -0.2, 0.0), high=(0.7, 0.2, 0.4))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_commands_are_rejected(bad):
    with pytest.raises(UnsafeCommand, match="NaN or inf"):
        check_finite(np.array([0.0, bad, 0.0]))


def test_limit_norm_keeps_direction():
    out = limit_norm(np.array([3.0, 4.0, 0.0]), 1.0)
    assert np.linalg.norm(out) == pytest.approx(1.0)
    np.testing.assert_allclose(out, [0.6, 0.8, 0.0])
    small = np.array([0.01, 0.0, 0.0])
    np.testing.assert_array_equal(limit_norm(small, 1.0), small)


def test_step_is_speed_limited_and_box_clipped():
    here = np.array([0.5, 0.0, 0.2])
    target = translation_target(here, here, np.array([1.0, 0.0, 0.0]), BOX, max_speed=0.2, dt=0.1)
    np.testing.assert_allclose(target, [0.52, 0.0, 0.2])
    edge = np.array([0.69, 0.19, 0.39])
    target = translation_target(edge, edge, np.array([0.02, 0.02, 0.02]), BOX, max_speed=1.0, dt=0.1)
    np.testing.assert_allclose(target, [0.7, 0.2, 0.4])


def test_blocked_arm_does_not_wind_up():
    measured = np.array([0.5, 0.0, 0.1])
    target = measured.copy()
    for _ in range(50):  # pushing down into something that does not move
        target = translation_target(measured, target, np.array([0.0, 0.0, -0.02]), BOX, max_speed=0.2, dt=0.1)
    assert np.linalg.norm(target - measured) == pytest.approx(MAX_LEAD_STEPS * 0.02)
