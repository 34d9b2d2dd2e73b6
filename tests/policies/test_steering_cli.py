"""SAC steering a frozen diffusion policy from the command line: `tether train sac --base-policy DIR --steer
residual|noise` trains end to end in the twin, and `tether eval` runs the result (base + RL actor)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tether.cli import app
from tether.config import load_rig

runner = CliRunner()
STEPS = 30  # past the debug loop's learning_starts (20): SAC updates happen


def _plain(output: str) -> str:
    """typer's boxed error panel as one line of words."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A debug-size diffusion policy (state observations) trained on three scripted pick_cube episodes."""
    tmp = tmp_path_factory.mktemp("base")
    store = tmp / "demos.zarr"
    recorded = runner.invoke(app, ["sim", "expert", "--episodes", "3", "--out", str(store)])
    assert recorded.exit_code == 0, recorded.output
    trained = runner.invoke(app, ["train", "diffusion", "--data", str(store), "--debug", "--out", str(tmp / "dp")])
    assert trained.exit_code == 0, trained.output
    return tmp / "dp" / "best"


def _train(base: Path, out: Path, *flags: str) -> dict:
    result = runner.invoke(app, ["train", "sac", "--debug", "--steps", str(STEPS), "--eval-every", str(STEPS),
                                 "--base-policy", str(base), "--out", str(out), *flags])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads((out / "checkpoint" / "config.json").read_text())


def _eval(checkpoint: Path, json_out: Path) -> dict:
    result = runner.invoke(app, ["eval", "--policy", str(checkpoint), "--task", "pick_cube", "--episodes", "2",
                                 "--json", str(json_out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads(json_out.read_text())


def test_noise_steering_trains_from_the_command_line_and_evaluates(base: Path, tmp_path: Path) -> None:
    saved = _train(base, tmp_path / "dsrl", "--steer", "noise", "--noise-scale", "1.2")
    assert saved["base_policy"] == {"path": str(base.resolve()), "steer": "noise", "scale": 1.2}
    diffusion = json.loads((base / "config.json").read_text())["diffusion"]
    assert saved["action_dim"] == diffusion["horizon"] * 4  # the actor's action is a whole chunk's noise
    assert saved["sac"]["grasp_critic"] is False and saved["critic_updates"] > 0
    summary = _eval(tmp_path / "dsrl" / "checkpoint", tmp_path / "dsrl_eval.json")
    assert summary["episodes"] == 2 and 0.0 <= summary["success_rate"] <= 1.0
    # Evaluated as deployed, one control tick at a time: the actor picks a noise every n_action_steps ticks.
    assert all(1 <= n <= load_rig("twin_panda").task.episode_length for n in summary["lengths"])
    assert Path(summary["contact_sheet"]).is_file()


def test_residual_checkpoint_evaluates_with_its_base(base: Path, tmp_path: Path) -> None:
    saved = _train(base, tmp_path / "res", "--residual-scale", "0.3")
    assert saved["base_policy"] == {"path": str(base.resolve()), "steer": "residual", "scale": 0.3}
    assert "state/base_action" in saved["observation_space"]
    summary = _eval(tmp_path / "res" / "checkpoint", tmp_path / "res_eval.json")
    assert summary["episodes"] == 2 and all(n >= 1 for n in summary["lengths"])
    moved = tmp_path / "moved"  # a checkpoint whose base is gone says so in one line
    shutil.copytree(tmp_path / "res" / "checkpoint", moved)
    config = json.loads((moved / "config.json").read_text())
    config["base_policy"]["path"] = str(tmp_path / "gone")
    (moved / "config.json").write_text(json.dumps(config))
    bad = runner.invoke(app, ["eval", "--policy", str(moved), "--episodes", "1"])
    assert bad.exit_code != 0 and "its base policy" in _plain(bad.output) and "gone" in _plain(bad.output)


def test_noise_steering_refuses_what_it_cannot_use(base: Path, tmp_path: Path) -> None:
    with_operator = runner.invoke(app, ["train", "sac", "--debug", "--steps", "5", "--base-policy", str(base),
                                        "--steer", "noise", "--interventions", "scripted",
                                        "--out", str(tmp_path / "a")])
    assert with_operator.exit_code != 0 and "noise steering learns from its own chunks only" in _plain(
        with_operator.output)
    no_base = runner.invoke(app, ["train", "sac", "--debug", "--steps", "5", "--steer", "noise",
                                  "--out", str(tmp_path / "b")])
    assert no_base.exit_code != 0 and "give --base-policy DIR" in _plain(no_base.output)
    unknown = runner.invoke(app, ["train", "sac", "--debug", "--steps", "5", "--base-policy", str(base),
                                  "--steer", "sideways", "--out", str(tmp_path / "c")])
    assert unknown.exit_code != 0 and "must be one of residual, noise" in _plain(unknown.output)
    assert not any((tmp_path / name).exists() for name in "abc")
