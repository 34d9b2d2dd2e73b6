from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import imagecodecs
import numpy as np
from typer.testing import CliRunner

from tether.cli import app
from tether.config import load_rig
from tether.datasets.episode import EpisodeArrays
from tether.datasets.store import EpisodeStore, EpisodeWriter

runner = CliRunner()


def _store(path: Path, lengths: list[int]) -> None:
    rig = load_rig("twin_panda")
    space = gym.spaces.Dict(
        {
            "images/front": gym.spaces.Box(0, 255, (12, 16, 3), np.uint8),
            "state/tcp_pose": gym.spaces.Box(-np.inf, np.inf, (7,), np.float32),
            "state/gripper": gym.spaces.Box(-np.inf, np.inf, (1,), np.float32),
        }
    )
    rng = np.random.default_rng(0)
    with EpisodeWriter.create(path, space, 4, fps=10, rig=rig, chunk_steps=4) as writer:
        for i, n in enumerate(lengths):
            frames = {k: rng.integers(0, 256, (n + 1, *b.shape), np.uint8) if b.dtype == np.uint8
                      else rng.standard_normal((n + 1, *b.shape)).astype(np.float32)
                      for k, b in space.spaces.items()}  # fmt: skip
            done = np.arange(n) == n - 1
            episode = EpisodeArrays(
                obs={k: v[:-1] for k, v in frames.items()},
                final_obs={k: v[-1] for k, v in frames.items()},
                action=rng.uniform(-1, 1, (n, 4)).astype(np.float32),
                policy_action=np.full((n, 4), np.nan, np.float32),
                reward=done.astype(np.float32),
                terminated=done,
                truncated=np.zeros(n, bool),
                intervened=np.arange(n) < 2,
                timestamp=10.0 * i + np.arange(n) / 10,
            )
            writer.write_episode(episode, source="teleop" if i else "scripted", success=i != 1, task="pick_cube")


def test_info_verify_repair_and_view(tmp_path: Path) -> None:
    path = tmp_path / "demo.zarr"
    _store(path, [5, 3, 8])
    result = runner.invoke(app, ["data", "info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["episodes"], summary["frames"], summary["rig"]) == (3, 16, "twin_panda")
    assert summary["success_rate"] == 2 / 3 and summary["sources"] == {"scripted": 1, "teleop": 2}
    assert summary["arrays"]["images/front"]["shape"] == [16, 12, 16, 3]
    table = runner.invoke(app, ["data", "info", str(path)])
    assert "3 episodes, 16 frames" in table.output and "data/images/front" in table.output

    sheet = tmp_path / "sheet.png"
    viewed = runner.invoke(app, ["data", "view", str(path), "--episode", "2", "--out", str(sheet), "--frames", "4"])
    assert viewed.exit_code == 0, viewed.output
    image = imagecodecs.png_decode(sheet.read_bytes())
    assert image.shape == (12, 4 * 16 + 3 * 2, 3)
    np.testing.assert_array_equal(image[:, :16], EpisodeStore(path).load("images/front", 8, 9)[0])
    rrd = tmp_path / "episode.rrd"
    assert runner.invoke(app, ["data", "view", str(path), "-e", "1", "-o", str(rrd)]).exit_code == 0
    assert rrd.stat().st_size > 1000

    repaired = runner.invoke(app, ["data", "repair", str(path)])
    assert repaired.exit_code == 0 and "dropped 0 uncommitted frame(s)" in repaired.output

    assert runner.invoke(app, ["data", "verify", str(path)]).exit_code == 0
    (path / "data/action/c/1/0").write_bytes(b"not a chunk")  # rows 4-7: episodes 0 and 1
    broken = runner.invoke(app, ["data", "verify", str(path)])
    assert broken.exit_code == 1
    assert "problem: episode 0 (frames 0-4): data/action does not decode" in broken.output


def test_convert_round_trip_and_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "demo.zarr"
    _store(path, [4, 6])
    bag = tmp_path / "demo.mcap"
    assert runner.invoke(app, ["data", "convert", str(path), str(bag)]).exit_code == 0
    back = tmp_path / "back.zarr"
    converted = runner.invoke(app, ["data", "convert", str(bag), str(back), "--source", "teleop"])
    assert converted.exit_code == 0, converted.output and "2 episode(s)" in converted.output
    np.testing.assert_array_equal(EpisodeStore(back).load("action"), EpisodeStore(path).load("action"))

    missing = runner.invoke(app, ["data", "info", str(tmp_path / "nope.zarr")])
    assert missing.exit_code == 2 and missing.output.strip().count("\n") == 0
    assert "nope.zarr: not a zarr store" in missing.output
    wrong = runner.invoke(app, ["data", "convert", str(path), str(tmp_path / "x.zarr")])
    assert wrong.exit_code == 2 and "exactly one side must be a .mcap file" in wrong.output
    bad_view = runner.invoke(app, ["data", "view", str(path), "--episode", "9"])
    assert bad_view.exit_code == 2 and "no episode 9" in bad_view.output


def test_pack_then_info_and_verify_read_the_zip(tmp_path: Path) -> None:
    path, out = tmp_path / "demo.zarr", tmp_path / "demo.zip"
    _store(path, [5, 3, 8])
    result = runner.invoke(app, ["data", "pack", str(path), str(out)])
    assert result.exit_code == 0 and "3 episodes, 16 frames" in result.output, result.output
    summary = json.loads(runner.invoke(app, ["data", "info", str(out), "--json"]).output)
    assert (summary["episodes"], summary["frames"]) == (3, 16)
    assert summary["bytes"] > summary["arrays"]["images/front"]["bytes"] > 16 * 12 * 16 * 3 * 0.9
    assert runner.invoke(app, ["data", "verify", str(out)]).exit_code == 0
    again = runner.invoke(app, ["data", "pack", str(path), str(out)])
    assert again.exit_code == 2 and again.output.strip() == f"error: {out}: already exists; choose a new file"
    refused = runner.invoke(app, ["data", "repair", str(out)])
    assert refused.exit_code == 2 and "a packed (zip) store is read-only" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
