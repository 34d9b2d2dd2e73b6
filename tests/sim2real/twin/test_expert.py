"""The scripted operator succeeds on both tasks, reproducibly, and the CLI reports it."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tether.config import ScriptedOperatorConfig
from tether.sim2real.twin import make_env
from tether.sim2real.twin.expert import ScriptedOperator, run_episode


@pytest.mark.parametrize("task", ["pick_cube", "peg_insert"])
def test_expert_succeeds_on_seeded_episodes(task):
    env = make_env(task)
    operator = ScriptedOperator(env.unwrapped.rig.teleop.scripted, seed=0)
    results = [run_episode(env, operator, seed=seed) for seed in range(12)]
    assert np.mean([success for success, _ in results]) >= 11 / 12
    assert all(length < env.unwrapped.episode_length for success, length in results if success)


def test_noise_free_operator_is_deterministic_and_noise_changes_actions():
    env = make_env("pick_cube")
    env.reset(seed=3)
    clean = ScriptedOperatorConfig(noise_std=0.0, hesitate_prob=0.0, overshoot=0.0)
    assert np.array_equal(ScriptedOperator(clean, seed=1).act(env), ScriptedOperator(clean, seed=2).act(env))
    noisy = ScriptedOperatorConfig()
    assert not np.array_equal(ScriptedOperator(noisy, seed=1).act(env), ScriptedOperator(noisy, seed=2).act(env))


def test_operator_taking_over_low_near_the_cube_descends_instead_of_returning_to_its_detour():
    """An operator that did not drive the approach (it takes over from a policy) must not send the arm back up to
    its detour waypoint, nor back up to the approach height for a centimetre of misalignment: both taught a policy
    that reached the cube to leave it."""
    env = make_env("pick_cube")
    env.reset(seed=3)
    sim = env.unwrapped.sim
    guide = ScriptedOperator(ScriptedOperatorConfig(noise_std=0.0, hesitate_prob=0.0, overshoot=0.0), seed=0)
    while sim.tcp_pose()[0][2] > sim.task_state()["cube_pos"][2] + 0.045:  # the 'policy' brings the arm down
        env.step(guide.act(env))
    tcp, cube = sim.tcp_pose()[0], sim.task_state()["cube_pos"]
    assert np.linalg.norm(tcp[:2] - cube[:2]) < 0.008
    late = ScriptedOperator(ScriptedOperatorConfig(noise_std=0.0, hesitate_prob=0.0, overshoot=1.0), seed=0)
    assert late.act(env)[2] < 0  # down onto the cube, not up to the waypoint 7 cm above it

    off = ScriptedOperator(ScriptedOperatorConfig(noise_std=0.0, hesitate_prob=0.0, overshoot=0.0), seed=0)
    for _ in range(3):  # a policy pushes the arm a centimetre or two off to one side
        env.step(np.array([0.0, 0.3, 0.0, -1.0], np.float32))
    tcp = sim.tcp_pose()[0]
    assert 0.008 < np.linalg.norm(tcp[:2] - cube[:2]) < 0.03 and tcp[2] > cube[2] + 0.02
    action = off.act(env)
    assert action[1] < -0.05 and abs(action[2]) < 1e-6  # back over the cube at this height


def test_cli_expert_writes_summary(tmp_path):
    out = tmp_path / "expert.json"
    result = subprocess.run(
        [sys.executable, "-m", "tether.cli", "sim", "expert", "--task", "pick_cube", "--episodes", "3", "--seed", "5", "--json", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.read_text())
    assert summary["episodes"] == 3
    assert 0.0 <= summary["success_rate"] <= 1.0 and summary["mean_length"] > 0
    assert "success" in result.stdout


def test_cli_check_runs_env_checker():
    result = subprocess.run(
        [sys.executable, "-m", "tether.cli", "sim", "check", "--task", "peg_insert"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "check_env: passed" in result.stdout and "state/hole_pos" in result.stdout


def test_cli_expert_records_into_a_store(tmp_path):
    from tether.datasets.store import EpisodeStore

    store_path = tmp_path / "demos.zarr"
    for _ in range(2):  # the second run appends
        result = subprocess.run(
            [sys.executable, "-m", "tether.cli", "sim", "expert", "--task", "pick_cube", "--episodes", "1", "--out", str(store_path)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
    store = EpisodeStore(store_path)
    assert store.n_episodes == 2
    assert {info.source for info in store.episodes} == {"scripted"}
    assert {"images/front", "images/wrist", "state/cube_pos", "state/tcp_pose"} <= set(store.spec.obs)
    episode = store.episode(0)
    assert episode.intervened.all() and len(episode) > 10
