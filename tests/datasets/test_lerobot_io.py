"""LeRobotDataset v3.0 export and import: the layout LeRobot 0.4.4 reads, a bit-exact round trip, the CLI, and
one-line errors on folders that are not such a dataset."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import imagecodecs
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tether.cli import app
from tether.config import load_rig
from tether.datasets import lerobot_io
from tether.datasets.episode import EpisodeArrays
from tether.datasets.lerobot_io import QUANTILES, export_lerobot, import_lerobot
from tether.datasets.store import EpisodeStore, EpisodeWriter, StoreError
from tether.errors import BadInput

WRIST = (4, 5, 3)
LENGTHS = (5, 1, 9)
TASKS = ("pick_cube", "", "pick_cube")
FEATURES = ["observation.images.front", "observation.images.wrist", "observation.state", "action",
            "next.reward", "next.done", "next.truncated", "complementary_info.is_intervention", "timestamp",
            "frame_index", "episode_index", "index", "task_index"]  # fmt: skip


def _two_camera_episode(marked: SimpleNamespace, index: int, length: int) -> EpisodeArrays:
    """A marked episode (front camera, state/mark, state/tcp_pose) plus a wrist camera; the first episode ends
    terminated, the last truncated, the middle one neither."""
    episode = marked.episode(index, length, terminated=index == 0, truncated=index == len(LENGTHS) - 1)
    wrist = np.random.default_rng([index, 7]).integers(0, 256, (length + 1, *WRIST), np.uint8)
    return replace(episode, obs=episode.obs | {"images/wrist": wrist[:-1]},
                   final_obs=episode.final_obs | {"images/wrist": wrist[-1]})  # fmt: skip


@pytest.fixture
def store(tmp_path: Path, marked: SimpleNamespace) -> Path:
    path = tmp_path / "demo.zarr"
    space = gym.spaces.Dict(marked.space().spaces | {"images/wrist": gym.spaces.Box(0, 255, WRIST, np.uint8)})
    rig = load_rig("twin_panda")
    with EpisodeWriter.create(path, space, marked.action_dim, fps=10, rig=rig, chunk_steps=4) as writer:
        for index, (length, task) in enumerate(zip(LENGTHS, TASKS)):
            writer.write_episode(_two_camera_episode(marked, index, length), source="hil" if index else "teleop",
                                 task=task, success=[True, None, False][index], seed=index + 3,
                                 notes=f"note {index}")  # fmt: skip
    return path


@pytest.fixture
def exported(store: Path, tmp_path: Path) -> Path:
    out = tmp_path / "lerobot"
    assert export_lerobot(store, out) == len(LENGTHS)
    return out


def _info(out: Path) -> dict:
    return json.loads((out / "meta" / "info.json").read_text())


def test_export_writes_the_v30_layout_lerobot_reads(store: Path, exported: Path) -> None:
    info = _info(exported)
    assert {key: value for key, value in info.items() if key not in ("features", "tether")} == {
        "codebase_version": "v3.0", "robot_type": "twin_panda", "total_episodes": 3, "total_frames": 15,
        "total_tasks": 2, "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
        "fps": 10, "splits": {"train": "0:3"},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet", "video_path": None,
    }  # fmt: skip
    features = info["features"]
    assert list(features) == FEATURES
    assert features["observation.images.wrist"] == {"dtype": "image", "shape": [4, 5, 3],
                                                    "names": ["height", "width", "channels"]}  # fmt: skip
    names = ["mark_0", "mark_1", *[f"tcp_pose_{i}" for i in range(7)]]
    assert features["observation.state"] == {"dtype": "float32", "shape": [9], "names": names}
    assert features["action"]["names"] == ["dx", "dy", "dz", "gripper"]
    assert features["next.done"] == {"dtype": "bool", "shape": [1], "names": None}
    assert info["tether"]["state_keys"] == {"state/mark": {"start": 0, "shape": [2]},
                                            "state/tcp_pose": {"start": 2, "shape": [7]}}  # fmt: skip
    assert info["tether"]["repo_id"] == "tether/demo"

    data = pq.ParquetFile(exported / "data" / "chunk-000" / "file-000.parquet")
    schema = data.schema_arrow
    assert schema.names == FEATURES and data.metadata.num_row_groups == 3  # a row group per episode
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    assert schema.field("observation.images.front").type == image
    assert schema.field("observation.state").type == pa.list_(pa.float32(), 9)
    assert schema.field("action").type == pa.list_(pa.float32(), 4)
    assert [schema.field(n).type for n in FEATURES[4:]] == [pa.float32(), *[pa.bool_()] * 3, pa.float32(),
                                                             *[pa.int64()] * 4]  # fmt: skip
    hf = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert hf["observation.images.front"] == {"_type": "Image"}
    assert hf["action"] == {"feature": {"dtype": "float32", "_type": "Value"}, "length": 4, "_type": "List"}
    rows = data.read().to_pydict()
    assert rows["index"] == list(range(15)) and rows["episode_index"] == [0] * 5 + [1] + [2] * 9
    assert rows["frame_index"] == [*range(5), 0, *range(9)] and rows["task_index"] == [0] * 5 + [1] + [0] * 9
    np.testing.assert_array_equal(rows["timestamp"], np.float32(np.array(rows["frame_index"]) / 10))
    assert rows["observation.images.front"][0]["bytes"].startswith(b"\x89PNG")
    np.testing.assert_array_equal(rows["action"], EpisodeStore(store).load("action"))

    episodes = pq.read_table(exported / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pydict()
    assert episodes["episode_index"] == [0, 1, 2] and episodes["length"] == list(LENGTHS)
    assert episodes["dataset_from_index"] == [0, 5, 6] and episodes["dataset_to_index"] == [5, 6, 15]
    assert episodes["tasks"] == [["pick_cube"], ["unspecified"], ["pick_cube"]]
    for where in ("data", "meta/episodes"):
        assert episodes[f"{where}/chunk_index"] == episodes[f"{where}/file_index"] == [0, 0, 0], where
    tasks = pq.read_table(exported / "meta" / "tasks.parquet")
    assert tasks.to_pydict() == {"task_index": [0, 1], "__index_level_0__": ["pick_cube", "unspecified"]}
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["__index_level_0__"]

    stats = json.loads((exported / "meta" / "stats.json").read_text())
    assert set(stats) == set(FEATURES)
    assert all(set(s) == {"min", "max", "mean", "std", "count", *QUANTILES} for s in stats.values())
    front = {name: np.array(value) for name, value in stats["observation.images.front"].items()}
    assert all(front[name].shape == (3, 1, 1) for name in front if name != "count")
    assert front["count"].tolist() == [15] and 0 <= front["min"].min() and front["max"].max() <= 1
    assert np.array(stats["observation.state"]["mean"]).shape == (9,)
    assert stats["next.reward"]["count"] == [15]


def test_stats_are_exact_per_episode_and_pooled_over_episodes(store: Path, exported: Path) -> None:
    """Per episode from a pixel histogram (equal to np.quantile over the pixels); over the dataset, mean and
    std pooled exactly, quantiles as LeRobot averages them."""
    source = EpisodeStore(store)
    episodes = pq.read_table(exported / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pydict()
    frames = source.load("images/front", 0, 5)
    for name, q in QUANTILES.items():
        expected = np.quantile(frames.reshape(-1, 3), q, axis=0) / 255
        np.testing.assert_allclose(np.ravel(episodes[f"stats/observation.images.front/{name}"][0]), expected)
    np.testing.assert_allclose(np.ravel(episodes["stats/observation.images.front/std"][0]),
                               frames.reshape(-1, 3).std(axis=0) / 255)  # fmt: skip
    stats = json.loads((exported / "meta" / "stats.json").read_text())
    actions = source.load("action").astype(np.float64)
    np.testing.assert_allclose(stats["action"]["mean"], actions.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["action"]["std"], actions.std(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(stats["action"]["min"], actions.min(axis=0))
    runs = ((0, 5), (5, 6), (6, 15))
    pooled = sum((b - a) * np.quantile(actions[a:b], 0.5, axis=0) for a, b in runs) / 15
    np.testing.assert_allclose(stats["action"]["q50"], pooled)
    assert stats["next.done"]["max"] == [True] and stats["frame_index"]["max"] == [8]


def _assert_same_steps(imported: EpisodeStore, original: EpisodeStore) -> None:
    assert imported.n_episodes == original.n_episodes and imported.fps == original.fps
    np.testing.assert_array_equal(imported.episode_ends, original.episode_ends)
    for key in [*original.spec.obs, "action", "reward", "terminated", "truncated", "intervened"]:
        np.testing.assert_array_equal(imported.load(key), original.load(key), err_msg=key)


def test_round_trip_restores_the_store(store: Path, exported: Path, tmp_path: Path) -> None:
    back = tmp_path / "back.zarr"
    assert import_lerobot(exported, back) == 3
    imported, original = EpisodeStore(back), EpisodeStore(store)
    assert imported.spec == original.spec and imported.rig == original.rig
    _assert_same_steps(imported, original)
    for mine, theirs in zip(imported.episodes, original.episodes):
        assert (mine.task, mine.source, mine.success, mine.seed, mine.notes, mine.start_time) == (
            theirs.task, theirs.source, theirs.success, theirs.seed, theirs.notes, theirs.start_time)
        assert not mine.has_final_obs  # LeRobot has no place for the true final observation
    np.testing.assert_allclose(imported.load("timestamp", 6, 15), 1200.0 + np.arange(9) / 10)


def test_a_large_export_splits_into_files_and_chunks(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With limits this small every episode gets a data file and an episodes file, two files per chunk."""
    monkeypatch.setattr(lerobot_io, "DATA_FILE_SIZE_IN_MB", 1e-4)
    monkeypatch.setattr(lerobot_io, "CHUNKS_SIZE", 2)
    out = tmp_path / "split"
    export_lerobot(store, out)
    names = ["chunk-000/file-000.parquet", "chunk-000/file-001.parquet", "chunk-001/file-000.parquet"]
    assert sorted(p.relative_to(out / "data").as_posix() for p in (out / "data").rglob("*.parquet")) == names
    tables = [pq.read_table(out / "meta" / "episodes" / name) for name in names]
    episodes = pa.concat_tables(tables).to_pydict()
    for where in ("data", "meta/episodes"):
        assert (episodes[f"{where}/chunk_index"], episodes[f"{where}/file_index"]) == ([0, 0, 1], [0, 1, 0])
    assert _info(out)["chunks_size"] == 2
    import_lerobot(out, tmp_path / "back.zarr")
    _assert_same_steps(EpisodeStore(tmp_path / "back.zarr"), EpisodeStore(store))


def _as_lerobot_made(out: Path) -> None:
    """What LeRobot itself writes: no tether entry or columns, a camera as JPEG bytes."""
    info = _info(out)
    del info["tether"]
    (out / "meta" / "info.json").write_text(json.dumps(info))
    path = out / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.select([n for n in table.column_names if not n.startswith("tether/")]), path)
    path = out / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(path)
    column = table.column("observation.images.wrist").combine_chunks()
    pngs = column.field("bytes").to_pylist()
    jpegs = pa.array([imagecodecs.jpeg8_encode(imagecodecs.png_decode(png)) for png in pngs], pa.binary())
    wrist = pa.StructArray.from_arrays([jpegs, column.field("path")], ["bytes", "path"])
    index = table.column_names.index("observation.images.wrist")
    pq.write_table(table.set_column(index, "observation.images.wrist", wrist), path)


def test_a_dataset_lerobot_made_maps_by_feature_name(store: Path, exported: Path, tmp_path: Path) -> None:
    _as_lerobot_made(exported)
    back = tmp_path / "back.zarr"
    assert import_lerobot(exported, back, source="scripted") == 3
    imported, original = EpisodeStore(back), EpisodeStore(store)
    assert list(imported.spec.obs) == ["images/front", "images/wrist", "state/state"]
    state = np.concatenate([original.load("state/mark"), original.load("state/tcp_pose")], axis=1)
    np.testing.assert_array_equal(imported.load("state/state"), state)
    np.testing.assert_array_equal(imported.load("images/front"), original.load("images/front"))
    wrist = imported.load("images/wrist")
    assert wrist.shape == (15, 4, 5, 3) and wrist.dtype == np.uint8  # JPEG: lossy
    assert [e.task for e in imported.episodes] == ["pick_cube", "unspecified", "pick_cube"]
    assert {e.source for e in imported.episodes} == {"scripted"} and imported.rig is None
    assert [e.start_time for e in imported.episodes] == [0.0, 0.5, 0.6]  # end to end on the dataset's clock
    np.testing.assert_array_equal(imported.load("intervened"), original.load("intervened"))


def test_bad_folders_are_one_line_errors_naming_the_file(exported: Path, tmp_path: Path) -> None:
    info_path = exported / "meta" / "info.json"
    good = info_path.read_text()

    def refused(match: str, out: str) -> StoreError:
        with pytest.raises(StoreError, match=match) as caught:
            import_lerobot(exported, tmp_path / out)
        assert "\n" not in str(caught.value) and not (tmp_path / out).exists()
        return caught.value

    info_path.write_text(good[:40])
    assert str(info_path) in str(refused("not valid JSON", "a.zarr"))
    info_path.write_text(good.replace('"v3.0"', '"v2.1"'))
    assert str(info_path) in str(refused("codebase_version 'v2.1' is not v3.x", "b.zarr"))
    info_path.write_text(good.replace('"dtype": "image"', '"dtype": "video"', 1))
    refused("feature 'observation.images.front' is a video; videos are not supported yet", "c.zarr")
    info_path.unlink()
    assert str(info_path) in str(refused("missing", "d.zarr"))
    info_path.write_text(good)
    data = exported / "data" / "chunk-000" / "file-000.parquet"
    pq.write_table(pq.read_table(data).drop_columns(["action"]), data)
    assert str(data) in str(refused("no column 'action'", "e.zarr"))


def test_cli_converts_to_lerobot_and_back(store: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out, back = tmp_path / "lr", tmp_path / "back.zarr"
    result = runner.invoke(app, ["data", "convert", str(store), str(out), "--to", "lerobot"])
    assert result.exit_code == 0, result.output
    assert f"{out}: 3 episode(s)" in result.output and (out / "meta" / "info.json").is_file()
    result = runner.invoke(app, ["data", "convert", str(out), str(back), "--from", "lerobot"])
    assert result.exit_code == 0, result.output
    _assert_same_steps(EpisodeStore(back), EpisodeStore(store))
    again = runner.invoke(app, ["data", "convert", str(store), str(out), "--to", "lerobot"])
    assert isinstance(again.exception, BadInput) and "already exists" in str(again.exception)
    unknown = runner.invoke(app, ["data", "convert", str(out), str(back), "--from", "hdf5"])
    assert isinstance(unknown.exception, BadInput)
    assert "--from hdf5: must be one of auto, lerobot" in str(unknown.exception)
