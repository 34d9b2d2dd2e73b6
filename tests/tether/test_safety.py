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


# --- the setpoint filter ---------------------------------------------------------------

from scipy.spatial.transform import Rotation  # noqa: E402

from tether.safety import MotionLimits, Setpoint, SetpointFilter, next_setpoint, orientation_target  # noqa: E402

DOWN = (1.0, 0.0, 0.0, 0.0)
LIMITS = MotionLimits(BOX, max_linear_speed=0.25, max_angular_speed=1.0, max_linear_accel=1.5, dt=0.1, fixed_quat=None)
HERE = Setpoint(np.array([0.5, 0.0, 0.2]), np.array(DOWN))


def angle(a: np.ndarray, b: np.ndarray) -> float:
    return float((Rotation.from_quat(a) * Rotation.from_quat(b).inv()).magnitude())


def test_a_velocity_moves_the_setpoint_one_period_of_it():
    out = next_setpoint(HERE, HERE, np.array([0.1, -0.05, 0.0, 0.0, 0.0, 0.5]), LIMITS)
    np.testing.assert_allclose(out.position, HERE.position + [0.01, -0.005, 0.0])
    assert angle(out.quat_xyzw, HERE.quat_xyzw) == pytest.approx(0.05)


def test_every_setpoint_is_finite_in_the_box_and_one_step_from_the_last():
    rng = np.random.default_rng(0)
    setpoint = measured = HERE
    for _ in range(500):
        velocity = rng.normal(0, 3.0, 6) * rng.choice([1e-3, 1.0, 1e3])
        if rng.random() < 0.3:  # the arm lags or was pushed: the measured pose is elsewhere
            measured = Setpoint(np.clip(setpoint.position + rng.normal(0, 0.05, 3), BOX.low, BOX.high),
                                Rotation.random(random_state=rng.integers(1 << 30)).as_quat())
        out = next_setpoint(setpoint, measured, velocity, LIMITS)
        assert np.all(np.isfinite(out.position)) and np.all(np.isfinite(out.quat_xyzw))
        assert np.all(out.position >= BOX.low) and np.all(out.position <= BOX.high)
        assert np.linalg.norm(out.position - setpoint.position) <= LIMITS.max_step + 1e-12
        assert angle(out.quat_xyzw, setpoint.quat_xyzw) <= LIMITS.max_angle + 1e-9
        setpoint = out


def test_a_step_back_to_the_measured_pose_is_speed_limited_too():
    setpoint = Setpoint(np.array([0.6, 0.0, 0.2]), np.array(DOWN))  # far ahead of an arm left behind
    out = next_setpoint(setpoint, HERE, np.zeros(6), LIMITS, last_step=LIMITS.max_step)
    assert np.linalg.norm(out.position - setpoint.position) == pytest.approx(LIMITS.max_step)


def test_from_rest_the_step_grows_by_the_acceleration_limit_and_shrinks_at_once():
    full = np.array([0.25, 0, 0, 0, 0, 0])
    steps, setpoint, last = [], HERE, 0.0
    for velocity in [full, full, full, np.zeros(6)]:
        out = next_setpoint(setpoint, setpoint, velocity, LIMITS, last_step=last)
        last = float(np.linalg.norm(out.position - setpoint.position))
        steps.append(last)
        setpoint = out
    growth = LIMITS.max_step_growth  # 1.5 m/s^2 * (0.1 s)^2 = 15 mm
    np.testing.assert_allclose(steps, [growth, LIMITS.max_step, LIMITS.max_step, 0.0], atol=1e-12)


def test_without_rotation_actions_the_orientation_turns_to_the_fixed_one_and_stays():
    limits = MotionLimits(BOX, 0.25, 1.0, 1.5, 0.1, fixed_quat=DOWN)
    tilted = Setpoint(HERE.position, (Rotation.from_rotvec([0.0, 0.25, 0.0]) * Rotation.from_quat(DOWN)).as_quat())
    setpoint = tilted
    angles = []
    for _ in range(5):
        setpoint = next_setpoint(setpoint, setpoint, np.array([0, 0, 0, 5.0, -5.0, 5.0]), limits)
        angles.append(angle(setpoint.quat_xyzw, np.array(DOWN)))
    np.testing.assert_allclose(angles, [0.15, 0.05, 0.0, 0.0, 0.0], atol=1e-9)  # 0.1 rad a period, then none


def test_orientation_does_not_lead_the_measured_one_by_more_than_the_lead():
    measured = np.array(DOWN)
    previous = (Rotation.from_rotvec([0.0, 0.0, MAX_LEAD_STEPS * 0.1]) * Rotation.from_quat(DOWN)).as_quat()  # at the lead
    goal = (Rotation.from_rotvec([0.0, 0.0, 1.0]) * Rotation.from_quat(DOWN)).as_quat()
    out = orientation_target(measured, previous, goal, 0.1)
    assert angle(out, measured) == pytest.approx(MAX_LEAD_STEPS * 0.1)


def test_filter_applies_at_most_one_command_per_period_latest_wins():
    fil = SetpointFilter(LIMITS)
    fil.offer(np.array([0.1, 0, 0, 0, 0, 0]))
    assert fil.due(0.0)
    first = fil.apply(HERE, 0.0)
    np.testing.assert_allclose(first.position - HERE.position, [0.01, 0, 0])
    for i in range(90):  # a 1 kHz burst inside one period: merged, none applied
        fil.offer(np.array([0.0, 0.2 if i == 89 else -0.2, 0, 0, 0, 0]))
        assert not fil.due(0.001 * (i + 1))
    assert fil.merged == 89
    assert fil.due(0.095)
    second = fil.apply(HERE, 0.095)
    np.testing.assert_allclose(second.position - first.position, [0, 0.02, 0])  # the latest only, once
    assert not fil.due(0.5)  # nothing is replayed: the pending command was consumed
    with pytest.raises(RuntimeError, match="no command is due"):
        fil.apply(HERE, 0.5)


def test_a_setpoint_let_through_early_moves_no_faster_than_the_limit_over_its_time():
    fil = SetpointFilter(LIMITS)
    full = np.array([1.0, 0, 0, 0, 0, 0])  # asks for more than the limit
    steps, setpoint, now = [], HERE, 0.0
    for now in (0.0, 0.1, 0.2, 0.296):  # the last one comes 0.96 of a period after the one before
        fil.offer(full)
        new = fil.apply(HERE if setpoint is HERE else setpoint, now)
        steps.append(float(np.linalg.norm(new.position - setpoint.position)))
        setpoint = new
    np.testing.assert_allclose(steps[1:], [LIMITS.max_step, LIMITS.max_step, 0.96 * LIMITS.max_step])


def test_filter_reset_forgets_setpoint_and_pending_command():
    fil = SetpointFilter(LIMITS)
    fil.offer(np.array([0.2, 0, 0, 0, 0, 0]))
    fil.apply(HERE, 0.0)
    fil.offer(np.array([0.2, 0, 0, 0, 0, 0]))
    fil.reset()  # a hold or an e-stop
    assert fil.setpoint is None and fil.pending is None and not fil.due(1.0)
    fil.offer(np.array([0.0, 0.1, 0, 0, 0, 0]))
    assert not fil.due(0.05)  # the period of the last setpoint still runs
    moved = Setpoint(HERE.position + [0.03, 0, 0], HERE.quat_xyzw)
    out = fil.apply(moved, 0.1)
    np.testing.assert_allclose(out.position, moved.position + [0, 0.01, 0])  # from the measured pose


@pytest.mark.parametrize("bad", [[np.nan, 0, 0, 0, 0, 0], [0, 0, 0, np.inf, 0, 0], [0.1, 0.0, 0.0]])
def test_filter_rejects_malformed_commands_and_keeps_the_pending_one(bad):
    fil = SetpointFilter(LIMITS)
    fil.offer(np.array([0.1, 0, 0, 0, 0, 0]))
    with pytest.raises(UnsafeCommand, match="velocity rejected"):
        fil.offer(np.array(bad, float))
    np.testing.assert_allclose(fil.apply(HERE, 0.0).position, HERE.position + [0.01, 0, 0])
