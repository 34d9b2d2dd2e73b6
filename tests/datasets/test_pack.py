from __future__ import annotations

import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import zarr
from zarr.storage import ZipStore

from tether.datasets.pack import pack
from tether.datasets.store import EpisodeStore, EpisodeWriter, StoreError
from tether.datasets.verify import repair, verify

IMAGE = (24, 32, 3)  # 2304 bytes a frame: image shards hold 64 frames, so the last one is partly filled


@pytest.fixture
def source(tmp_path: Path, marked: SimpleNamespace) -> Path:
    """Three committed episodes, a fourth left open with frames on disk past the commit point."""
    path = tmp_path / "demo.zarr"
    writer = EpisodeWriter.create(path, marked.space(IMAGE), marked.action_dim, fps=10, chunk_steps=4)
    for i, n in enumerate([5, 70, 9]):
        writer.write_episode(marked.episode(i, n, image_shape=IMAGE), source="sim", success=i != 1, seed=i)
    tail = marked.episode(3, 12, image_shape=IMAGE)
    writer.begin_episode(source="sim")
    writer.add_steps(tail.obs, tail.action, reward=tail.reward, terminated=np.zeros(12, bool),
                     truncated=np.zeros(12, bool), intervened=tail.intervened)
    writer._wait_writes()  # the tail is on disk, as a crash would leave it
    yield path
    writer.close()


def test_packed_store_reads_back_bit_exact(tmp_path: Path, source: Path, marked: SimpleNamespace) -> None:
    out = tmp_path / "demo.zip"
    report = pack(source, out)
    original, packed = EpisodeStore(source), EpisodeStore(out)
    assert (report.episodes, report.frames) == (3, 84) and packed.packed and not original.packed
    assert (packed.n_episodes, packed.n_frames) == (3, 84)
    np.testing.assert_array_equal(packed.episode_ends, original.episode_ends)
    assert packed.episodes == original.episodes and packed.attrs == original.attrs
    for i, n in enumerate([5, 70, 9]):
        stored, expected = packed.episode(i), marked.episode(i, n, image_shape=IMAGE)
        for key in expected.obs:
            np.testing.assert_array_equal(stored.obs[key], expected.obs[key], err_msg=key)
            np.testing.assert_array_equal(stored.final_obs[key], expected.final_obs[key], err_msg=key)
        for name in ("action", "policy_action", "reward", "terminated", "truncated", "intervened",
                     "timestamp"):
            np.testing.assert_array_equal(getattr(stored, name), getattr(expected, name), err_msg=name)
    assert packed.array("data/action").shape[0] == 84  # the open episode's frames stayed behind
    result = verify(out)
    assert result.ok and not result.notes, result.problems + result.notes


def test_plain_zarr_reads_the_zip(tmp_path: Path, source: Path) -> None:
    out = tmp_path / "demo.zip"
    pack(source, out)
    root = zarr.open_group(ZipStore(out, mode="r"), mode="r")
    np.testing.assert_array_equal(root["data/action"][:], EpisodeStore(source).load("action"))
    np.testing.assert_array_equal(root["meta/episode_ends"][:], [5, 75, 84])
    with zipfile.ZipFile(out) as archive:  # chunks are stored as they were compressed, not deflated again
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
        assert not [name for name in archive.namelist() if name.endswith((".lock", ".partial"))]


def test_packed_store_refuses_writes(tmp_path: Path, source: Path, marked: SimpleNamespace) -> None:
    out = tmp_path / "demo.zip"
    pack(source, out)
    before = out.read_bytes()
    space = marked.space(IMAGE)
    for attempt in (lambda: EpisodeWriter.open(out), lambda: repair(out),
                    lambda: EpisodeWriter.create(out, space, marked.action_dim, fps=10, exist_ok=True)):
        with pytest.raises(StoreError, match=r"demo\.zip: a packed \(zip\) store is read-only") as error:
            attempt()
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="read-only"):  # plain zarr refuses too
        zarr.open_array(ZipStore(out, mode="r"), path="data/action", mode="r+")
    assert out.read_bytes() == before


def test_pack_refuses_bad_targets(tmp_path: Path, source: Path) -> None:
    (tmp_path / "taken.zip").write_bytes(b"")
    with pytest.raises(StoreError, match="taken.zip: already exists"):
        pack(source, tmp_path / "taken.zip")
    with pytest.raises(StoreError, match="ends in .zip"):
        pack(source, tmp_path / "demo.tar")
    pack(source, tmp_path / "demo.zip")
    with pytest.raises(StoreError, match="already a packed store"):
        pack(tmp_path / "demo.zip", tmp_path / "again.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.zarr", "demo.zip", "taken.zip"]
