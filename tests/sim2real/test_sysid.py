"""System identification recovers the dynamics a twin log was recorded with."""

import numpy as np
import pytest
import yaml

from tether import spaces
from tether.config import load_rig, resolve_rig_path
from tether.sim2real.arm_log import LoggedEpisode
from tether.sim2real.excitation import ExcitationConfig, plan_excitation, run_excitation
from tether.sim2real.stepped_twin import SteppedTwinArm, nominal_twin
from tether.sim2real.sysid import SysidConfig, identify, split_segments, with_dynamics, write_fitted_rig

FITTED = ("stiffness_scale", "damping_ratio", "joint_armature")
TRUTH = {"stiffness_scale": 0.75, "damping_ratio": 1.3, "joint_armature": 0.18, "command_latency_steps": 1}


def twin_log(rig, seconds: float, seed: int = 0) -> LoggedEpisode:
    sim = nominal_twin(rig)
    sim.reset(np.random.default_rng(seed))
    arm = SteppedTwinArm(sim)
    start = arm.read()[0][spaces.TCP_POSE][:3]
    plan = plan_excitation(start, rig, seconds, np.random.default_rng(seed), ExcitationConfig())
    return LoggedEpisode.from_arrays(0, run_excitation(arm, plan, rig))


@pytest.fixture(scope="module")
def nominal():
    return load_rig("twin_panda")


@pytest.fixture(scope="module")
def perturbed_log(nominal):
    return twin_log(with_dynamics(nominal, nominal.twin_dynamics.model_copy(update=TRUTH)), 16.0)


def test_least_squares_recovers_known_parameters(nominal, perturbed_log):
    config = SysidConfig(params=FITTED, method="lsq", max_latency=2, max_evals=40)
    result = identify(nominal, [perturbed_log], config)
    assert result.start.stiffness_scale == 1.0 and result.start.joint_armature == pytest.approx(0.1)
    assert result.fitted.command_latency_steps == TRUTH["command_latency_steps"]
    for name in FITTED:
        assert getattr(result.fitted, name) == pytest.approx(TRUTH[name], rel=0.03), name
    assert result.fitted.joint_damping == result.start.joint_damping  # not fitted, not moved
    before, after = result.before["held_out"]["tcp_rms_m"], result.after["held_out"]["tcp_rms_m"]
    assert before > 1e-3 and after < 0.01 * before


def test_cma_recovers_controller_gains(nominal):
    truth = {"stiffness_scale": 0.7, "damping_ratio": 1.4}
    log = twin_log(with_dynamics(nominal, nominal.twin_dynamics.model_copy(update=truth)), 16.0, seed=1)
    config = SysidConfig(params=tuple(truth), method="cma", max_latency=0, max_evals=36, seed=0)
    result = identify(nominal, [log], config)
    for name, value in truth.items():
        assert getattr(result.fitted, name) == pytest.approx(value, rel=0.1), name
    assert result.after["held_out"]["tcp_rms_m"] < 0.2 * result.before["held_out"]["tcp_rms_m"]


def test_segments_hold_out_every_nth(perturbed_log):
    train, held = split_segments([perturbed_log], SysidConfig(segment_steps=20, holdout_every=4))
    assert [s.start for s in held] == [60, 140][: len(held)]
    assert not {s.start for s in train} & {s.start for s in held}
    assert all(s.stop - s.start == 20 for s in train + held)
    with pytest.raises(ValueError, match="record a longer log"):
        split_segments([perturbed_log], SysidConfig(segment_steps=60, washout_steps=2, holdout_every=4))


def test_bad_sysid_settings_are_refused():
    with pytest.raises(ValueError, match="choose from"):
        SysidConfig(params=("inertia",))
    with pytest.raises(ValueError, match="washout"):
        SysidConfig(segment_steps=2, washout_steps=2)


def test_fitted_rig_is_a_copy_with_twin_dynamics(nominal, tmp_path):
    fitted = nominal.twin_dynamics.model_copy(update={**TRUTH, "joint_damping": 3.0})
    rig = write_fitted_rig("twin_panda", fitted, tmp_path / "fitted.yaml")
    assert rig.twin_dynamics == fitted
    original = yaml.safe_load(resolve_rig_path("twin_panda").read_text())
    written = yaml.safe_load((tmp_path / "fitted.yaml").read_text())
    assert {k: v for k, v in written.items() if k != "twin_dynamics"} == original
