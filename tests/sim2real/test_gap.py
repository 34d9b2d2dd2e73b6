"""The sim-vs-rig gap: replaying a log on the twin, and logs that cannot be replayed."""

import json

import gymnasium as gym
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tether import spaces
from tether.cli import app
from tether.config import load_rig, resolve_rig_path
from tether.datasets.store import EpisodeWriter
from tether.sim2real.arm_log import LogError, load_log
from tether.sim2real.command_replay import gap_report
from tether.sim2real.stepped_twin import nominal_twin
from tether.sim2real.sysid import with_dynamics

runner = CliRunner()


@pytest.fixture(scope="module")
def twin_log(tmp_path_factory):
    out = tmp_path_factory.mktemp("gap") / "log.zarr"
    result = runner.invoke(app, ["sim", "excite", "--out", str(out), "--seconds", "16", "--seed", "2"])
    assert result.exit_code == 0, result.output
    return out


def gap(rig, log) -> dict:
    return gap_report(rig, load_log(log, rig.arm.control_rate_hz), nominal_twin(rig))["overall"]


def test_the_twin_replays_its_own_log_exactly(twin_log, tmp_path):
    report = tmp_path / "gap.json"
    result = runner.invoke(app, ["eval", "--gap", "--log", str(twin_log), "--json", str(report)])
    assert result.exit_code == 0, result.output
    overall = json.loads(report.read_text())["overall"]
    assert overall["episodes"] == 1 and overall["steps"] > 100
    assert overall["tcp_rms_m"] < 1e-5 and overall["tcp_final_mean_m"] < 1e-5  # float32 storage, nothing more


def test_the_gap_grows_with_a_dynamics_mismatch(twin_log):
    rig = load_rig("twin_panda")
    gaps = [
        gap(with_dynamics(rig, rig.twin_dynamics.model_copy(update={"stiffness_scale": scale})), twin_log)["tcp_rms_m"]
        for scale in (1.0, 0.85, 0.6)
    ]
    assert gaps[0] < 1e-5 < gaps[1] < gaps[2]
    late = with_dynamics(rig, rig.twin_dynamics.model_copy(update={"command_latency_steps": 1}))
    assert gap(late, twin_log)["tcp_rms_m"] > gaps[2]  # a step of latency is the biggest mismatch here


def test_missing_store_is_one_line(tmp_path):
    with pytest.raises(LogError, match="no such log store") as error:
        load_log(tmp_path / "none.zarr", 10.0)
    assert "\n" not in str(error.value)
    result = runner.invoke(app, ["eval", "--gap", "--log", str(tmp_path / "none.zarr")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'none.zarr'}: no such log store"]


def test_store_without_commands_is_one_line(tmp_path):
    rig = load_rig("twin_panda")
    path = tmp_path / "demos.zarr"
    space = spaces.observation_space([])
    with EpisodeWriter.create(path, space, spaces.action_space(rig).shape[0], fps=10.0) as writer:
        writer.begin_episode(source="sim")
        for _ in range(3):
            writer.add_step({k: np.zeros(s.shape, np.float32) for k, s in space.spaces.items()}, np.zeros(4))
        writer.end_episode(success=None)
    with pytest.raises(LogError, match="no state/joint_vel, state/tcp_target in the store") as error:
        load_log(path, 10.0)
    assert "\n" not in str(error.value)
    result = runner.invoke(app, ["sim", "sysid", "--log", str(path), "--out", str(tmp_path / "rig.yaml")])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "rig.yaml").exists()


def test_log_at_another_control_rate_is_refused(twin_log):
    with pytest.raises(LogError, match="logged at 10 Hz, but the rig's control rate is 20 Hz"):
        load_log(twin_log, 20.0)


def test_plain_eval_still_asks_for_a_policy():
    result = runner.invoke(app, ["eval", "--task", "pick_cube"])
    assert result.exit_code == 2 and "--policy" in result.output


def test_non_twin_rig_cannot_be_identified(twin_log, tmp_path):
    result = runner.invoke(app, ["sim", "sysid", "--log", str(twin_log), "--rig", "franka_realsense"])
    assert result.exit_code == 2
    assert "identification fits a twin rig" in result.stderr
