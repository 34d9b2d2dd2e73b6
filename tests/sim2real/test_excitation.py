"""Excitation: the plan and the logged run stay inside the workspace box and under the speed limit."""

import numpy as np
import pytest

from tether import spaces
from tether.config import load_rig
from tether.datasets.store import EpisodeStore
from tether.sim2real.arm_log import LOG_DIMS, TCP_TARGET, load_log
from tether.sim2real.excitation import ExcitationConfig, inner_box, plan_excitation, record_excitation
from tether.sim2real.stepped_twin import SteppedTwinArm, nominal_twin

SECONDS = 16.0


@pytest.fixture(scope="module")
def rig():
    return load_rig("twin_panda")


@pytest.fixture(scope="module")
def logged(rig, tmp_path_factory):
    out = tmp_path_factory.mktemp("excite") / "log.zarr"
    sim = nominal_twin(rig)

    def next_arm():
        sim.reset(np.random.default_rng(0))
        return SteppedTwinArm(sim)

    episodes = record_excitation(next_arm, rig, out, seconds=SECONDS, episodes=2, seed=3, source="sim")
    return out, episodes


def test_plan_stays_in_the_inner_box_under_the_speed_bound(rig):
    config = ExcitationConfig()
    start = np.array([0.31, 0.0, 0.48])  # the home TCP, outside the inner box
    plan = plan_excitation(start, rig, 30.0, np.random.default_rng(0), config)
    steps = np.linalg.norm(np.diff(np.vstack([start, plan]), axis=0), axis=1)
    assert steps.max() <= config.speed_fraction * rig.arm.max_linear_speed * rig.control_dt + 1e-12
    box = inner_box(rig.arm.workspace, config)
    settled = plan[int(0.3 * len(plan)):]  # well past the lead-in
    assert np.all(settled >= np.array(box.low) - 1e-9) and np.all(settled <= np.array(box.high) + 1e-9)
    extent = settled.max(axis=0) - settled.min(axis=0)
    assert np.all(extent > 0.25 * (np.array(box.high) - np.array(box.low)))  # a wide motion, not a wiggle


def test_plans_differ_by_seed_and_repeat_with_it(rig):
    start = np.array([0.5, 0.0, 0.3])
    a, b, c = (plan_excitation(start, rig, 20.0, np.random.default_rng(s), ExcitationConfig()) for s in (0, 0, 1))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_logged_run_respects_box_and_speed_limit(rig, logged):
    _, episodes = logged
    arm, dt = rig.arm, rig.control_dt
    for episode in episodes:
        targets = episode.obs[TCP_TARGET][:, :3].astype(float)
        assert np.all(targets >= np.array(arm.workspace.low) - 1e-6)
        assert np.all(targets <= np.array(arm.workspace.high) + 1e-6)
        steps = np.linalg.norm(np.diff(targets, axis=0), axis=1)
        assert steps.max() <= arm.max_linear_speed * dt + 1e-6
        measured = episode.obs[spaces.TCP_POSE][:, :3]
        assert np.all(measured >= np.array(arm.workspace.low) - 0.005)
        assert np.all(measured <= np.array(arm.workspace.high) + 0.005)
        speed = np.linalg.norm(episode.obs[spaces.TCP_VEL][:, :3], axis=1)
        assert speed.max() <= 1.2 * arm.max_linear_speed  # the arm may overshoot its command a little, no more
        assert speed.max() > 0.3 * arm.max_linear_speed  # and it does move


def test_log_store_holds_what_replay_needs(rig, logged):
    out, episodes = logged
    store = EpisodeStore(out)
    assert set(store.spec.obs) == set(LOG_DIMS)
    assert [e.source for e in store.episodes] == ["sim", "sim"]
    assert [e.seed for e in store.episodes] == [3, 4]
    loaded = load_log(out, rig.arm.control_rate_hz)
    assert [len(e) for e in loaded] == [len(e) for e in episodes]
    np.testing.assert_allclose(loaded[1].tcp_target, episodes[1].obs[TCP_TARGET])


def test_too_short_a_run_is_refused(rig):
    with pytest.raises(ValueError, match="too short") as error:
        plan_excitation(np.array([0.5, 0.0, 0.3]), rig, 5.0, np.random.default_rng(0), ExcitationConfig())
    assert "\n" not in str(error.value)
