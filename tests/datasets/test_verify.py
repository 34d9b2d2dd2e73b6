from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import google_crc32c
import numpy as np
import pytest
import zarr

from tether.config import load_rig
from tether.datasets.mcap_io import export_mcap
from tether.datasets.replay_io import replay_from_store
from tether.datasets.sampler import TransitionSampler
from tether.datasets.store import EpisodeStore, EpisodeWriter, StoreError
from tether.datasets.verify import repair, verify
from tether.datasets.view import contact_sheet


def _store(path: Path, marked: SimpleNamespace, lengths: list[int], image_codec: str = "lossless") -> None:
    rig = load_rig("twin_panda")
    with EpisodeWriter.create(path, marked.space(), marked.action_dim, fps=10, chunk_steps=4, rig=rig,
                              image_codec=image_codec) as writer:
        for i, n in enumerate(lengths):
            writer.write_episode(marked.episode(i, n), source="sim")


def _edit_metadata(path: Path, array: str, **fields: object) -> None:
    document = path / array / "zarr.json"
    document.write_text(json.dumps(json.loads(document.read_text()) | fields))


def _set(array: str, values: list[int]) -> Callable[[Path], None]:
    return lambda path: zarr.open_array(str(path), path=array, mode="r+").__setitem__(slice(None), values)


def _drop_inner_chunk(path: Path) -> None:
    """Mark row 1 of the first image shard (a lossy store's) as not stored, with a valid index checksum (as zarr
    would write it)."""
    shard = path / "data/images/front/c/0/0/0/0"
    raw = bytearray(shard.read_bytes())
    size = 64 * 16 + 4
    index = np.frombuffer(bytes(raw[-size:-4]), "<u8").reshape(-1, 2).copy()
    index[1] = 2**64 - 1
    raw[-size:] = index.tobytes() + google_crc32c.value(index.tobytes()).to_bytes(4, "little")
    shard.write_bytes(bytes(raw))


# Damage on a store of episodes [3, 9, 5] (frames 0-2, 3-11, 12-16; chunk_steps 4), what verify and the
# readers name, and the first episode it makes unusable (None: the store as a whole, repair cannot help).
DAMAGE: dict[str, tuple[Callable[[Path], None], str, int | None]] = {
    "truncated array": (lambda p: zarr.open_array(str(p), path="data/action", mode="r+").resize((10, 4)),
                        "data/action (10 rows) hold less", 1),
    "missing chunk": (lambda p: (p / "data/reward/c/1").unlink(), "episode 1 (frames 3-11): data/reward: storage file c/1 is missing", 1),
    "undecodable chunk": (lambda p: (p / "data/action/c/2/0").write_bytes(b"\x00garbage" * 5),
                          "episode 1 (frames 3-11): data/action does not decode", 1),
    "missing chunk of frames": (lambda p: (p / "data/images/front/c/0/0/0/0").unlink(),
                                "episode 0 (frames 0-2): data/images/front: storage file c/0/0/0/0 is missing", 0),
    "chunk missing inside a shard": (_drop_inner_chunk, "episode 0 (frames 0-2): data/images/front: row 1 is not in its shard", 0),
    "non-monotonic episode_ends": (_set("meta/episode_ends", [3, 2, 17]), "meta/episode_ends: entry 1 (2) does not follow 3", 1),
    "episode_ends beyond the data": (_set("meta/episode_ends", [3, 12, 40]), "the index commits 3 episodes, 40 frames", 2),
    "episode_ends of the wrong dtype": (lambda p: _edit_metadata(p, "meta/episode_ends", data_type="float32"),
                                       "meta/episode_ends: dtype float32 is not the schema's int64", None),
    "undecodable episode_ends": (lambda p: (p / "meta/episode_ends/c/0").write_bytes(b"garbage"),
                                 "meta/episode_ends does not decode", None),
    "attribute of the wrong type": (lambda p: _edit_metadata(p, "", attributes={**zarr.open_group(str(p)).attrs, "fps": "fast"}),
                                    "zarr.json attribute 'fps' must be a finite number > 0, got 'fast'", None),
    "huge claimed index": (lambda p: _edit_metadata(p, "meta/episode_ends", shape=[10**12]),
                           "meta/episode_ends: claims 1000000000000 entries, 3 of them commits", 3),
    "huge claimed rows": (lambda p: _edit_metadata(p, "data/intervened", shape=[17, 10**9], dimension_names=None, chunk_grid={
        "name": "regular", "configuration": {"chunk_shape": [4, 10**9]}}), "data/intervened: rows of shape [1000000000]", None),
}


def _readers(path: Path, tmp_path: Path, kind: str) -> dict[str, Callable[[], object]]:
    """Every way a store is read: open and iterate, replay fill, MCAP export, the view, and a sampler that
    reads rows on demand (it checks that every chunk is stored when it starts; a chunk that is stored but
    does not decode shows only when a batch reads it)."""
    def iterate() -> None:
        store = EpisodeStore(path)
        list(store.iter_episodes())
        [store.episode(i) for i in range(store.n_episodes)]
    on_demand = {} if kind == "undecodable chunk" else {
        "lazy sampler": lambda: TransitionSampler(EpisodeStore(path), cache=False)}
    return on_demand | {
        "iter_episodes": iterate,
        "replay fill": lambda: replay_from_store(path),
        "MCAP export": lambda: export_mcap(path, tmp_path / "out.mcap"),
        "view": lambda: [contact_sheet(EpisodeStore(path), i, tmp_path / "sheet.png") for i in range(3)],
    }


@pytest.mark.parametrize("kind", DAMAGE)
def test_damage_is_named_by_verify_and_refused_by_every_reader(kind: str, tmp_path: Path, marked: SimpleNamespace) -> None:
    damage, named, first_damaged = DAMAGE[kind]
    path = tmp_path / "damaged.zarr"
    _store(path, marked, [3, 9, 5], image_codec="jpeg" if "shard" in kind else "lossless")  # lossy frames are sharded
    damage(path)
    report = verify(path)
    assert not report.ok and any(named in problem for problem in report.problems), report.problems
    assert report.first_damaged == first_damaged
    expected_hint = "cannot fix" if first_damaged is None else "--drop-damaged"
    assert expected_hint in report.repair
    for reader, read in _readers(path, tmp_path, kind).items():
        with pytest.raises(StoreError) as refused:
            read()
        message = str(refused.value)
        assert "\n" not in message and message.startswith(f"{path}: damaged: ") and expected_hint in message, (reader, message)


def test_repair_drops_damaged_episodes_only_when_asked(tmp_path: Path, marked: SimpleNamespace) -> None:
    path = tmp_path / "damaged.zarr"
    _store(path, marked, [3, 9, 5])
    before = EpisodeStore(path).episode(0)
    (path / "data/reward/c/1").unlink()  # rows 4-7: episode 1
    with pytest.raises(StoreError, match="--drop-damaged` keeps episodes 0-0"):
        repair(path)
    assert not verify(path).ok  # refused: nothing changed
    result = repair(path, drop_damaged=True)
    assert result.kept_episodes == 1 and result.dropped_frames == 14
    assert verify(path).ok and verify(path).notes == []
    after = EpisodeStore(path)
    assert after.n_episodes == 1
    np.testing.assert_array_equal(after.episode(0).obs["state/mark"], before.obs["state/mark"])
    with pytest.raises(StoreError, match="cannot fix"):
        DAMAGE["attribute of the wrong type"][0](path)
        repair(path, drop_damaged=True)


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
