"""Randomisation profiles: none / light / heavy / rig ranges, scaling about nominal, and the draws they
make in the twin (applied at reset, reproducible under the seed, wider for heavy than for light)."""

import numpy as np
import pytest

from tether.config import load_rig
from tether.sim2real.profiles import LIGHT, PROFILES, profile_ranges, scale_ranges
from tether.sim2real.vector import make_twin_env

RIG = load_rig("twin_panda")
SCALES = ("friction_scale", "mass_scale", "damping_scale", "actuator_gain_scale", "light_scale")
JITTERS = ("camera_pos_jitter", "camera_fovy_jitter_deg", "color_jitter", "obs_noise_std", "object_pos_noise_std",
           "object_dropout")


def width(ranges, name: str) -> float:
    value = getattr(ranges, name)
    return value.high - value.low if hasattr(value, "high") else value


def test_profiles_differ_as_intended():
    none, light, heavy, rig = (profile_ranges(p, RIG) for p in PROFILES)
    assert not none.enabled and light.enabled and heavy.enabled and rig.enabled
    for name in SCALES + JITTERS:
        assert width(heavy, name) > width(light, name) > 0, name
        if name in SCALES:  # heavy contains light, both around the nominal 1
            assert getattr(heavy, name).low < getattr(light, name).low <= 1 <= getattr(light, name).high
    assert heavy.action_latency_steps[1] > light.action_latency_steps[1]
    assert rig.model_dump(exclude={"enabled"}) == RIG.randomization.model_dump(exclude={"enabled"})
    for ranges in (none, light, heavy, rig):  # the task's start distribution is the rig's in every profile
        assert (ranges.object_xy, ranges.object_yaw) == (RIG.randomization.object_xy, RIG.randomization.object_yaw)


def test_scale_moves_ranges_between_nominal_and_full():
    zero, half, one = (scale_ranges(LIGHT, s) for s in (0.0, 0.5, 1.0))
    assert one == LIGHT
    for name in SCALES:
        assert (getattr(zero, name).low, getattr(zero, name).high) == (1.0, 1.0)
        assert width(half, name) == pytest.approx(width(LIGHT, name) / 2)
    assert all(getattr(zero, name) == 0 for name in JITTERS) and zero.action_latency_steps == (0, 0)
    huge = scale_ranges(LIGHT, 100.0)  # saturates at what the config allows instead of failing
    assert huge.light_scale.low == 0.0 and huge.action_latency_steps[1] == 10 and huge.obs_noise_std == 0.1
    with pytest.raises(ValueError, match="must be >= 0"):
        scale_ranges(LIGHT, -0.1)


def test_unknown_profile_is_one_clear_error():
    with pytest.raises(ValueError, match="profile 'medium': unknown"):
        profile_ranges("medium", RIG)


def draws(profile: str, seeds: range) -> np.ndarray:
    """Per reset: friction scale of the table, damping of joint 1, stiffness gain of actuator 1, a table colour."""
    env = make_twin_env("pick_cube", RIG, ranges=profile_ranges(profile, RIG))
    sim = env.unwrapped.sim
    nominal = sim.randomizer.nominal
    table, dof, actuator = sim.model.geom("table").id, sim.controller.dof_index[0], sim.controller.actuators[0]
    rows = []
    for seed in seeds:
        env.reset(seed=seed)
        model = sim.model
        rows.append([model.geom_friction[table, 0] / nominal["geom_friction"][table, 0],
                     model.dof_damping[dof] / nominal["dof_damping"][dof],
                     model.actuator_gainprm[actuator, 0] / nominal["actuator_gainprm"][actuator, 0],
                     model.geom_rgba[table, 0] - nominal["geom_rgba"][table, 0]])
    env.close()
    return np.array(rows)


def test_draws_are_applied_reproducible_and_as_wide_as_the_profile():
    seeds = range(12)
    none, light, heavy = draws("none", seeds), draws("light", seeds), draws("heavy", seeds)
    np.testing.assert_array_equal(none, np.tile([1.0, 1.0, 1.0, 0.0], (len(seeds), 1)))
    np.testing.assert_array_equal(light, draws("light", seeds))  # same seeds, same draws
    assert not np.array_equal(light[:6], light[6:])
    bounds = [LIGHT.friction_scale, LIGHT.damping_scale, LIGHT.actuator_gain_scale]
    for column, bound in enumerate(bounds):
        assert np.all((light[:, column] >= bound.low - 1e-9) & (light[:, column] <= bound.high + 1e-9))
    assert np.all(np.abs(light[:, 3]) <= LIGHT.color_jitter + 1e-9)
    spread = lambda d: np.abs(d - [1.0, 1.0, 1.0, 0.0]).max(axis=0)  # noqa: E731
    assert np.all(spread(heavy) > spread(light))
    assert np.any(heavy[:, 0] < LIGHT.friction_scale.low) or np.any(heavy[:, 0] > LIGHT.friction_scale.high)
