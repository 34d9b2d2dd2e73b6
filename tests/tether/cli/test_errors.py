"""A catalogue of malformed inputs through the real `tether` entry point: each ends as exactly one line on
stderr (no traceback, no panel), exit code 2 for bad input and 1 for a runtime failure, and nothing on disk
is created, changed or deleted."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import typer
import yaml

from tether import spaces
from tether.cli import exit_code, main, one_line, run
from tether.cli.output import claim_output
from tether.config import resolve_rig_path
from tether.datasets.store import EpisodeWriter
from tether.policies.checkpoint import CONFIG_FILE, MODEL_FILE
from tether.policies.sac import SACAgent, SACConfig
from tether.types import DeviceError

BAD_INPUT, RUNTIME = 2, 1


def _tree(root: Path) -> dict[str, str]:
    """Every path under `root` with a digest of its content (folders as such), to see any change at all."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def _fails(capfd: pytest.CaptureFixture[str], root: Path, code: int, *args: str) -> str:
    """Run `tether ARGS` in this process; check the exit code, one stderr line and an untouched `root`; the line."""
    before = _tree(root)
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capfd.readouterr()
    lines = err.splitlines()
    assert exit_info.value.code == code, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in out + err and "╭" not in err
    assert _tree(root) == before
    return lines[0]


def _rig_data() -> dict:
    return yaml.safe_load(resolve_rig_path("twin_panda").read_text())


@pytest.fixture
def rigs(tmp_path: Path) -> dict[str, Path]:
    """Malformed rig files, one per way of being wrong."""
    folder = tmp_path / "rigs"
    folder.mkdir()
    variants = {
        "nan_home": ("home_joints", [math.nan, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785]),
        "inf_box": ("workspace", {"low": [0.3, -0.25, 0.0], "high": [0.7, 0.25, math.inf]}),
        "inf_scale": ("action_scale", [math.inf, 0.1]),
    }
    paths = {}
    for name, (key, value) in variants.items():
        data = _rig_data()
        data["arm"][key] = value
        paths[name] = folder / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(data))
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    paths["alias_bomb"] = folder / "alias_bomb.yaml"
    paths["alias_bomb"].write_text("\n".join([*lines, "name: *a8", "arm: {backend: twin}"]) + "\n")
    paths["oversize"] = folder / "oversize.yaml"
    paths["oversize"].write_text(resolve_rig_path("twin_panda").read_text() + "#" * (2 << 20) + "\n")
    paths["not_yaml"] = folder / "not_yaml.yaml"
    paths["not_yaml"].write_text("name: x\narm: [unclosed\n")
    paths["missing"] = folder / "missing.yaml"
    return paths


@pytest.fixture(scope="module")
def pristine_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    space = spaces.observation_space([], extra_state={"target_pos": 3})
    return SACAgent(space, 4, SACConfig(hidden_dims=(16, 16)), seed=0).save(tmp_path_factory.mktemp("ckpt") / "policy")


@pytest.fixture
def checkpoint(tmp_path: Path, pristine_checkpoint: Path) -> Path:
    return Path(shutil.copytree(pristine_checkpoint, tmp_path / "policy"))


RIG_CASES = {
    "nan_home": "home_joints.0: Input should be a finite number",
    "inf_box": "workspace.high.2: Input should be a finite number",
    "inf_scale": "action_scale.0: Input should be a finite number",
    "alias_bomb": "alias '*a0' (rig files take no aliases)",
    "oversize": "over the 1048576 a rig file may have",
    "not_yaml": "invalid YAML",
    "missing": "rig file not found",
}


@pytest.mark.parametrize("command", ["record", "eval", "deploy", "up"])
@pytest.mark.parametrize("case", sorted(RIG_CASES))
def test_a_bad_rig_is_one_line_and_exit_2(capfd, tmp_path, rigs, checkpoint, command, case) -> None:
    rig = str(rigs[case])
    args = {
        "record": ["record", "--rig", rig, "--out", str(tmp_path / "new.zarr"), "-n", "1"],
        "eval": ["eval", "--policy", str(checkpoint), "--rig", rig, "-n", "1"],
        "deploy": ["deploy", "--policy", str(checkpoint), "--rig", rig, "--out", str(tmp_path / "new.zarr")],
        "up": ["up", "--rig", rig, "--out", str(tmp_path / "up")],
    }[command]
    line = _fails(capfd, tmp_path, BAD_INPUT, *args)
    assert Path(rig).name in line and RIG_CASES[case] in line and len(line) < 400


DAMAGE = {
    "renamed_weights": (lambda p: (p / MODEL_FILE).rename(p / "model.bak"), f"{MODEL_FILE} is missing"),
    "garbage_weights": (lambda p: (p / MODEL_FILE).write_bytes(b"\x00" * 64), "not a readable safetensors file"),
    "truncated_weights": (lambda p: (p / MODEL_FILE).write_bytes((p / MODEL_FILE).read_bytes()[:200]),
                          "not a readable safetensors file"),
    "corrupt_config": (lambda p: (p / CONFIG_FILE).write_text('{"kind": "sac", '), "invalid JSON"),
    "foreign_kind": (lambda p: (p / CONFIG_FILE).write_text('{"kind": "reward_classifier"}'),
                     "kind 'reward_classifier' is a reward classifier"),
}


@pytest.mark.parametrize("command", ["eval", "deploy"])
@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_checkpoint_is_one_line_and_exit_2(capfd, tmp_path, checkpoint, command, case) -> None:
    damage, reason = DAMAGE[case]
    damage(checkpoint)
    extra = ["--out", str(tmp_path / "new.zarr")] if command == "deploy" else []
    line = _fails(capfd, tmp_path, BAD_INPUT, command, "--policy", str(checkpoint), *extra)
    assert "--policy" in line and str(checkpoint) in line and reason in line


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["train", "sac", "--bogus"], "tether train sac: No such option: --bogus"),
        (["eval", "--episodes", "0"], "--episodes"),
        (["deploy"], "Missing option '--policy'"),
        (["no-such-command"], "No such command 'no-such-command'"),
        (["up", "--nodes", "juggler"], "nodes ['juggler']: unknown"),
        (["node", "arm"], "'arm' runs inside `tether node twin`"),
        (["eval", "--policy", "/no/such/checkpoint"], "no such checkpoint folder"),
        (["sim", "expert", "--task", "fly"], "'fly': unknown task (known: pick_cube, peg_insert, reach)"),
        (["up", "--obs", "depth"], "'depth': must be state or pixels"),
        (["calibrate", "camera", "--rig", "twin_panda", "--camera", "front"], "calibration needs a hardware arm"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(capfd, tmp_path, args, reason) -> None:
    assert reason in _fails(capfd, tmp_path, BAD_INPUT, *args)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A one-episode store with a camera, enough for the training commands to get as far as their output."""
    path = tmp_path / "demos.zarr"
    space = gym.spaces.Dict({"images/front": gym.spaces.Box(0, 255, (16, 16, 3), np.uint8),
                             "state/gripper": gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)})
    obs = {key: np.zeros(box.shape, box.dtype) for key, box in space.spaces.items()}
    with EpisodeWriter.create(path, space, 4, fps=10) as writer:
        writer.begin_episode(source="scripted", task="pick_cube")
        for _ in range(3):
            writer.add_step(obs, np.zeros(4, np.float32), 0.0, terminated=False, truncated=False, intervened=True)
        writer.end_episode(success=False, final_obs=obs)
    return path


def _occupied(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("a week of results\n")
    return folder


def test_existing_outputs_are_refused_without_force(capfd, tmp_path, checkpoint, store) -> None:
    run_dir = _occupied(tmp_path / "runs" / "old")
    report = tmp_path / "report.json"
    report.write_text("{}\n")
    refusals = [
        ["train", "sac", "--out", str(run_dir), "--debug"],
        ["train", "reward-classifier", "--data", str(store), "--out", str(run_dir)],
        ["train", "diffusion", "--data", str(store), "--out", str(run_dir)],
        ["train", "sim", "--out", str(run_dir)],
        ["demo", "--out", str(run_dir)],
        ["eval", "--policy", str(checkpoint), "--json", str(report)],
        ["deploy", "--policy", str(checkpoint), "--json", str(report)],
        ["sim", "expert", "--json", str(report)],
        ["sim", "sysid", "--log", str(tmp_path / "any.zarr"), "--json", str(report)],
        ["sim", "sysid", "--log", str(tmp_path / "any.zarr"), "--out", str(report)],
    ]
    for args in refusals:
        line = _fails(capfd, tmp_path, BAD_INPUT, *args)
        assert "exists already" in line and "give --force to overwrite it" in line, args
    # A checkpoint from a finished run, but --no-resume: starting over would overwrite it.
    finished = tmp_path / "runs" / "finished"
    shutil.copytree(checkpoint, finished / "checkpoint")
    line = _fails(capfd, tmp_path, BAD_INPUT, "train", "sac", "--out", str(finished), "--no-resume")
    assert f"{finished}: exists already" in line
    # A HIL run is continued only when asked: its learner resumes and its episode store grows.
    line = _fails(capfd, tmp_path, BAD_INPUT, "train", "hil", "--out", str(run_dir))
    assert "exists already" in line and "give --resume to continue that run" in line


def test_claim_output_allows_new_empty_resumed_and_forced_outputs(tmp_path) -> None:
    claim_output(tmp_path / "new", "--out", force=False)
    claim_output(tmp_path, "--out", force=False)  # empty
    occupied = _occupied(tmp_path / "occupied")
    claim_output(occupied, "--out", force=False, resuming=True)
    claim_output(occupied, "--out", force=True)
    with pytest.raises(typer.BadParameter, match="a folder that is not empty"):
        claim_output(occupied, "--out", force=False)
    assert (occupied / "notes.txt").read_text() == "a week of results\n"


def test_exit_codes_and_lines_of_errors_no_check_anticipated() -> None:
    assert exit_code(DeviceError("franka 172.16.0.2: cannot connect")) == RUNTIME
    assert exit_code(OSError(28, "No space left on device")) == RUNTIME
    assert exit_code(FileNotFoundError("a path the user named")) == BAD_INPUT
    assert exit_code(KeyError("a bug")) is None
    assert one_line("first\n  second\tthird") == "first second third"
    assert len(one_line("x" * 10_000)) < 600


def test_an_unexpected_error_is_one_line_with_a_hint_and_exit_1(capfd, monkeypatch) -> None:
    """A bug stands in through a command whose body raises what no check anticipated."""
    import tether.cli.sim as sim

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("observation_space")

    monkeypatch.setattr(sim, "run_expert", broken)
    monkeypatch.delenv("TETHER_TRACEBACK", raising=False)
    assert run(["sim", "expert", "-n", "1"]) == RUNTIME
    err = capfd.readouterr().err
    assert err.splitlines() == [
        "error: unexpected KeyError: 'observation_space' (--verbose or TETHER_TRACEBACK=1 shows the traceback)"
    ]
    monkeypatch.setenv("TETHER_TRACEBACK", "1")
    assert run(["sim", "expert", "-n", "1"]) == RUNTIME
    assert "Traceback" in capfd.readouterr().err


def _tether(*args: str, columns: str | None = None) -> subprocess.CompletedProcess:
    env = os.environ | ({"COLUMNS": columns} if columns else {})
    # The timeout only stops a hang from stalling the suite; the command should fail within seconds.
    return subprocess.run([sys.executable, "-m", "tether.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.usefixtures("ros_domain")
def test_up_on_a_hardware_rig_without_the_robot_is_a_runtime_error(tmp_path) -> None:
    result = _tether("up", "--rig", "franka_realsense", "--out", str(tmp_path / "up"))
    assert result.returncode == RUNTIME, result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()] and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: franka 172.16.0.2: cannot connect")


def test_errors_do_not_wrap_on_a_narrow_terminal_and_help_stays(capfd, tmp_path) -> None:
    result = _tether("eval", "--policy", str(tmp_path / "a" / "long" / "path" / "to" / "no" / "checkpoint"), columns="40")
    assert result.returncode == BAD_INPUT
    assert result.stderr == (f"error: tether eval: Invalid value for --policy: {tmp_path}/a/long/path/to/no/"
                             "checkpoint: no such checkpoint folder\n")
    assert run(["--help"]) == 0
    assert "Usage: tether" in capfd.readouterr().out
