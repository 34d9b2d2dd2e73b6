"""`tether train sim` end to end at debug size: SAC in twins with a profile and the curriculum writes a
checkpoint that loads and evaluates on the twin it trained in; diffusion trains on scripted demos
recorded in the randomised twin; bad input is one clear line."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from tether.cli import app
from tether.config import load_rig
from tether.policies.diffusion import DiffusionPolicy
from tether.policies.sac import SACAgent, SACConfig
from tether.sim2real.profiles import profile_ranges

torch.set_num_threads(1)
runner = CliRunner(env={"COLUMNS": "400", "NO_COLOR": "1"})


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_sac_run_writes_a_loadable_checkpoint_and_a_summary(tmp_path):
    out = tmp_path / "run"
    output = _invoke("train", "sim", "--task", "reach", "--rig", "franka_realsense", "--randomize", "heavy",
                     "--steps", "60", "--envs", "1", "--seed", "2", "--demo-episodes", "1", "--debug", "--out", str(out))
    assert "final success" in output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == 60 and summary["critic_updates"] > 0 and summary["demo_transitions"] > 0
    assert [p["env_steps"] for p in summary["success_over_time"]] == [50, 60]
    assert all("randomization_scale" in p and "train_success_rate" in p for p in summary["success_over_time"])
    assert summary["curriculum"]["history"][0]["scale"] == 0.0
    # The run trained in the twin of the Franka rig, with the heavy profile as its full ranges.
    twin = load_rig(out / "twin_rig.yaml")
    franka = load_rig("franka_realsense")
    assert twin.arm.backend == "twin" and twin.arm.workspace == franka.arm.workspace
    assert twin.randomization == profile_ranges("heavy", franka)
    assert twin.task.name == "reach"  # the task trained, not the rig's pick_cube: eval and deploy default to it
    agent = SACAgent.load(out / "checkpoint")
    assert "state/target_pos" in agent.observation_space.spaces
    assert agent.action_dim == 3 and agent.grasp is None  # reach's action has no gripper, so no grasp critic
    recipe = SACConfig()  # the learner core's critic ensemble and UTD are reach's defaults too
    assert (agent.config.num_critics, agent.config.utd_ratio) == (recipe.num_critics, recipe.utd_ratio)
    report = tmp_path / "eval.json"
    _invoke("eval", "--policy", str(out / "checkpoint"), "--rig", str(out / "twin_rig.yaml"),
            "--episodes", "1", "--json", str(report))
    assert json.loads(report.read_text())["episodes"] == 1


def test_diffusion_run_trains_on_demos_recorded_in_the_randomised_twin(tmp_path):
    out = tmp_path / "run"
    _invoke("train", "sim", "--task", "reach", "--policy", "diffusion", "--randomize", "light", "--demo-episodes", "3",
            "--seed", "1", "--debug", "--out", str(out))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["demos"]["episodes"] == 3 and summary["demos"]["success_rate"] == 1.0
    assert (out / "demos.zarr").is_dir()
    policy = DiffusionPolicy.load(out / "diffusion" / "last")
    assert "state/target_pos" in policy.observation_keys


def test_bad_profile_and_task_are_one_line_errors(tmp_path):
    for args, words in ((["--randomize", "medium"], "unknown profile"), (["--task", "fly"], "unknown task")):
        result = runner.invoke(app, ["train", "sim", *args, "--out", str(tmp_path / "x")])
        assert result.exit_code != 0 and words in result.output
