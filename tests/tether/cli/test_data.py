from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import imagecodecs
import numpy as np
import pytest
import zarr

from tether.cli import run
from tether.config import load_rig
from tether.datasets.episode import EpisodeArrays
from tether.datasets.store import EpisodeStore, EpisodeWriter


class Result:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr
        self.output = stdout + stderr


@pytest.fixture
def tether(capsys: pytest.CaptureFixture[str]):  # noqa: ANN201 - a command runner
    """`tether ...` through the real entry point (its error boundary included), output captured."""
    def invoke(*args: str) -> Result:
        capsys.readouterr()
        code = run(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)
    return invoke


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


def test_info_verify_repair_and_view(tmp_path: Path, tether) -> None:
    path = tmp_path / "demo.zarr"
    _store(path, [5, 3, 8])
    result = tether(*["data", "info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["episodes"], summary["frames"], summary["rig"]) == (3, 16, "twin_panda")
    assert summary["success_rate"] == 2 / 3 and summary["sources"] == {"scripted": 1, "teleop": 2}
    assert summary["arrays"]["images/front"]["shape"] == [16, 12, 16, 3]
    table = tether(*["data", "info", str(path)])
    assert "3 episodes, 16 frames" in table.output and "data/images/front" in table.output

    sheet = tmp_path / "sheet.png"
    viewed = tether(*["data", "view", str(path), "--episode", "2", "--out", str(sheet), "--frames", "4"])
    assert viewed.exit_code == 0, viewed.output
    image = imagecodecs.png_decode(sheet.read_bytes())
    assert image.shape == (12, 4 * 16 + 3 * 2, 3)
    np.testing.assert_array_equal(image[:, :16], EpisodeStore(path).load("images/front", 8, 9)[0])
    rrd = tmp_path / "episode.rrd"
    assert tether(*["data", "view", str(path), "-e", "1", "-o", str(rrd)]).exit_code == 0
    assert rrd.stat().st_size > 1000

    repaired = tether(*["data", "repair", str(path)])
    assert repaired.exit_code == 0 and "dropped 0 frame(s)" in repaired.output and "3 episode(s) kept" in repaired.output

    assert tether(*["data", "verify", str(path)]).exit_code == 0
    (path / "data/action/c/1/0").write_bytes(b"not a chunk")  # rows 4-7: episodes 0 and 1
    broken = tether(*["data", "verify", str(path)])
    assert broken.exit_code == 1
    assert "problem: episode 0 (frames 0-4): data/action does not decode" in broken.output
    assert "repair: `tether data repair --drop-damaged` keeps none of its episodes" in broken.output
    zarr.open_array(str(path), path="data/reward", mode="r+").resize((6,))  # and the index commits 16 frames
    for command in (["info", str(path)], ["view", str(path), "-e", "0", "-o", str(tmp_path / "damaged.png")]):
        refused = tether("data", *command)
        assert refused.exit_code == 2 and refused.stdout == "" and len(refused.stderr.splitlines()) == 1, refused.output
        assert refused.stderr.startswith(f"error: {path}: damaged: ") and not (tmp_path / "damaged.png").exists()


def test_convert_round_trip_and_one_line_errors(tmp_path: Path, tether) -> None:
    path = tmp_path / "demo.zarr"
    _store(path, [4, 6])
    bag = tmp_path / "demo.mcap"
    assert tether(*["data", "convert", str(path), str(bag)]).exit_code == 0
    back = tmp_path / "back.zarr"
    converted = tether(*["data", "convert", str(bag), str(back), "--source", "teleop"])
    assert converted.exit_code == 0, converted.output and "2 episode(s)" in converted.output
    np.testing.assert_array_equal(EpisodeStore(back).load("action"), EpisodeStore(path).load("action"))

    missing = tether(*["data", "info", str(tmp_path / "nope.zarr")])
    assert missing.exit_code == 2 and missing.output.strip().count("\n") == 0
    assert "nope.zarr: not a zarr store" in missing.output
    wrong = tether(*["data", "convert", str(path), str(tmp_path / "x.zarr")])
    assert wrong.exit_code == 2 and "exactly one side must be a .mcap file" in wrong.output
    bad_view = tether(*["data", "view", str(path), "--episode", "9"])
    assert bad_view.exit_code == 2 and "no episode 9" in bad_view.output


def test_pack_then_info_and_verify_read_the_zip(tmp_path: Path, tether) -> None:
    path, out = tmp_path / "demo.zarr", tmp_path / "demo.zip"
    _store(path, [5, 3, 8])
    result = tether(*["data", "pack", str(path), str(out)])
    assert result.exit_code == 0 and "3 episodes, 16 frames" in result.output, result.output
    summary = json.loads(tether(*["data", "info", str(out), "--json"]).output)
    assert (summary["episodes"], summary["frames"]) == (3, 16)
    assert summary["bytes"] > summary["arrays"]["images/front"]["bytes"] > 16 * 12 * 16 * 3 * 0.9
    assert tether(*["data", "verify", str(out)]).exit_code == 0
    again = tether(*["data", "pack", str(path), str(out)])
    assert again.exit_code == 2 and again.output.strip() == f"error: {out}: already exists; pass --force to replace it"
    refused = tether(*["data", "repair", str(out)])
    assert refused.exit_code == 2 and "a packed (zip) store is read-only" in refused.output
    assert len(refused.output.strip().splitlines()) == 1


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_outputs_are_replaced_only_with_force(tmp_path: Path, tether) -> None:
    path = tmp_path / "demo.zarr"
    _store(path, [4, 6])
    (tmp_path / "out").mkdir()
    bag, store, sheet, packed = (tmp_path / "out" / name for name in ("demo.mcap", "back.zarr", "sheet.png", "demo.zip"))
    bag.write_bytes(b"someone's bag")
    sheet.write_bytes(b"someone's picture")
    packed.write_bytes(b"someone's zip")
    _store(store, [2])
    before = _snapshot(tmp_path / "out")
    refusals = {
        bag: ["convert", str(path), str(bag)],
        store: ["convert", str(tmp_path / "in.mcap"), str(store)],
        sheet: ["view", str(path), "-o", str(sheet)],
        packed: ["pack", str(path), str(packed)],
    }
    assert tether("data", "convert", str(path), str(tmp_path / "in.mcap")).exit_code == 0
    for target, command in refusals.items():
        refused = tether("data", *command)
        assert refused.exit_code == 2 and refused.stderr.strip() == f"error: {target}: already exists; pass --force to replace it"
        assert _snapshot(tmp_path / "out") == before  # nothing written, nothing deleted, no temporary left
    for target, command in refusals.items():
        assert tether("data", *command, "--force").exit_code == 0
    assert EpisodeStore(store).n_episodes == 2 and EpisodeStore(packed).n_episodes == 2
    assert imagecodecs.png_decode(sheet.read_bytes()).ndim == 3 and bag.read_bytes() != b"someone's bag"
    appended = tether("data", "convert", str(tmp_path / "in.mcap"), str(store), "--append")
    assert appended.exit_code == 0 and EpisodeStore(store).n_episodes == 4
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["back.zarr", "demo.mcap", "demo.zip", "sheet.png"]


def test_malformed_mcap_is_one_line_and_writes_nothing(tmp_path: Path, tether) -> None:
    path = tmp_path / "demo.zarr"
    _store(path, [4])
    good = tmp_path / "good.mcap"
    assert tether("data", "convert", str(path), str(good)).exit_code == 0
    for name, content in {"garbage.mcap": b"not a bag at all", "cut.mcap": good.read_bytes()[: len(good.read_bytes()) // 2]}.items():
        bag = tmp_path / name
        bag.write_bytes(content)
        result = tether("data", "convert", str(bag), str(tmp_path / "imported.zarr"))
        assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
        assert result.stderr.startswith(f"error: {bag}: not a readable MCAP file: ")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["demo.zarr", "good.mcap", *[n for n in ("garbage.mcap", "cut.mcap") if (tmp_path / n).exists()]])


def test_convert_to_the_diffusion_policy_layout_keeps_every_step_and_the_episode_ends(tmp_path: Path, tether) -> None:
    """The layout the Diffusion Policy codebase's ReplayBuffer opens: zarr format 2, data/<key>, meta/episode_ends."""
    path = tmp_path / "demo.zarr"
    _store(path, [4, 6, 3])
    out = tmp_path / "dp.zarr"
    result = tether("data", "convert", str(path), str(out), "--to", "diffusion-policy")
    assert result.exit_code == 0, result.output
    assert (out / ".zgroup").is_file() and (out / "data" / ".zgroup").is_file()  # format 2, readable by zarr 2
    root = zarr.open_group(out, mode="r", zarr_format=2)
    assert sorted(root["data"].array_keys()) == ["action", "front", "gripper", "tcp_pose"]
    np.testing.assert_array_equal(root["meta/episode_ends"][:], [4, 10, 13])
    store = EpisodeStore(path)
    for key, name in (("action", "action"), ("images/front", "front"), ("state/tcp_pose", "tcp_pose")):
        np.testing.assert_array_equal(root[f"data/{name}"][:], store.load(key), err_msg=key)
    assert root["data/front"].chunks == (1, 12, 16, 3)
    unknown = tether("data", "convert", str(path), str(tmp_path / "x"), "--to", "lerobot2")
    assert unknown.exit_code == 2 and "must be one of auto, diffusion-policy" in unknown.output
