from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from tether.datasets.store import EpisodeStore, EpisodeWriter
from tether.datasets.verify import repair, verify


def _store(path: Path, marked: SimpleNamespace, lengths: list[int]) -> None:
    with EpisodeWriter.create(path, marked.space(), marked.action_dim, fps=10, chunk_steps=4) as writer:
        for i, n in enumerate(lengths):
            writer.write_episode(marked.episode(i, n), source="sim")


def test_clean_store_verifies(tmp_path: Path, marked: SimpleNamespace) -> None:
    _store(tmp_path / "ok.zarr", marked, [3, 9, 5])
    report = verify(tmp_path / "ok.zarr")
    assert report.ok and not report.notes and (report.episodes, report.frames) == (3, 17)


def test_corrupt_chunk_is_named_by_episode_and_array(tmp_path: Path, marked: SimpleNamespace) -> None:
    path = tmp_path / "bad.zarr"
    _store(path, marked, [3, 9, 5])
    chunk = path / "data/action/c/2/0"  # rows 8-11 with chunk_steps=4: inside episode 1
    chunk.write_bytes(b"\x00garbage" * 5)
    report = verify(path)
    assert not report.ok
    assert any(p.startswith("episode 1 (frames 3-11): data/action does not decode") for p in report.problems)
    (path / "data/reward/c/0").unlink()
    assert "episode 0: data/reward: storage file c/0 is missing" in verify(path).problems


KILLED_MID_EPISODE = """
import sys, time, numpy as np
from tether.datasets.store import EpisodeStore, EpisodeWriter
obs = {k: v[0] for k, v in EpisodeStore(sys.argv[1]).episode(0).obs.items()}
writer = EpisodeWriter.open(sys.argv[1])
writer.begin_episode(source="teleop")
for _ in range(int(sys.argv[2])):
    writer.add_step(obs, np.zeros(4, np.float32))
print("mid", flush=True)
time.sleep(60)
"""


def test_repair_drops_the_uncommitted_tail_only(tmp_path: Path, marked: SimpleNamespace) -> None:
    path = tmp_path / "tail.zarr"
    _store(path, marked, [4, 6])
    before = EpisodeStore(path)
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_MID_EPISODE, str(path), "9"], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "mid"
    child.kill()
    child.wait()
    planted = path / "data/action/c/9.deadbeef.partial"
    planted.write_bytes(b"half a chunk")  # an interrupted rename (the kill may have left more of its own)
    report = verify(path)
    assert report.ok, report.problems
    assert any("uncommitted tail" in n for n in report.notes) and any("temporary file" in n for n in report.notes)
    result = repair(path)
    assert result.removed_files >= 1 and not planted.exists() and result.dropped_frames >= 9
    assert verify(path).notes == []
    after = EpisodeStore(path)
    assert after.n_frames == 10 and after.array("data/images/front").shape[0] == 10
    for key in [*before.data_keys]:
        np.testing.assert_array_equal(after.load(key), before.load(key))
