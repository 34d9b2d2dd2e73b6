from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import zarr

from tether.config import load_rig
from tether.datasets.episode import EpisodeArrays
from tether.datasets.store import EpisodeStore, EpisodeWriter, StoreError


def assert_episodes_equal(stored: EpisodeArrays, original: EpisodeArrays) -> None:
    for key in original.obs:
        np.testing.assert_array_equal(stored.obs[key], original.obs[key], err_msg=key)
        np.testing.assert_array_equal(stored.final_obs[key], original.final_obs[key], err_msg=key)
    for name in ("action", "policy_action", "reward", "terminated", "truncated", "intervened", "timestamp"):
        np.testing.assert_array_equal(getattr(stored, name), getattr(original, name), err_msg=name)


def test_round_trip_is_bit_exact_step_by_step_and_in_batches(tmp_path: Path, marked: SimpleNamespace) -> None:
    path = tmp_path / "demo.zarr"
    rig = load_rig("twin_panda")
    episodes = [marked.episode(i, n) for i, n in enumerate([7, 1, 30, 12])]
    with EpisodeWriter.create(path, marked.space(), marked.action_dim, fps=10, rig=rig, chunk_steps=8) as writer:
        for index, episode in enumerate(episodes[:2]):
            writer.begin_episode(source="teleop", task="pick_cube", seed=5, notes="first try")
            for t, transition in enumerate(episode.transitions()):
                writer.add_step(
                    transition.obs, transition.action, transition.reward, transition.terminated,
                    transition.truncated, transition.intervened, transition.policy_action,
                    timestamp=float(episode.timestamp[t]),
                )  # fmt: skip
            assert writer.end_episode(success=True, final_obs=episode.final_obs) == index
        for episode in episodes[2:]:
            writer.write_episode(episode, source="hil", success=False)
    store = EpisodeStore(path)
    assert (store.n_episodes, store.n_frames) == (4, 50)
    np.testing.assert_array_equal(store.episode_ends, [7, 8, 38, 50])
    for i, episode in enumerate(episodes):
        assert_episodes_equal(store.episode(i), episode)
    first, third = store.episodes[0], store.episodes[2]
    assert (first.source, first.task, first.seed, first.notes, first.success) == ("teleop", "pick_cube", 5, "first try", True)
    assert (third.source, third.seed, third.success, third.start, third.length) == ("hil", None, False, 8, 30)
    assert store.rig == rig.model_dump(mode="json") and store.fps == 10.0
    assert store.observation_space == marked.space()
    assert store.image_codec == {"name": "blosc-lz4", "lossless": True}


def test_a_caller_that_reuses_its_arrays_between_steps_records_every_step(tmp_path: Path, marked: SimpleNamespace) -> None:
    """A driver fills the same buffers at every step (as a camera ring buffer does): each step is stored as it was
    when added, whether its rows were written yet or not, and the last observation stands in for a missing final."""
    path = tmp_path / "reused.zarr"
    episode = marked.episode(0, 21)
    reused = {key: np.empty_like(value[0]) for key, value in episode.obs.items()}
    action = np.empty(marked.action_dim, np.float32)
    with EpisodeWriter.create(path, marked.space(), marked.action_dim, fps=10, chunk_steps=8) as writer:
        writer.begin_episode(source="teleop")
        for t in range(len(episode)):
            for key in reused:
                reused[key][...] = episode.obs[key][t]
            action[...] = episode.action[t]
            writer.add_step(reused, action, terminated=t == len(episode) - 1)
        for value in reused.values():
            value[...] = 0  # after the last step, before the commit
        writer.end_episode(success=True)
    stored = EpisodeStore(path).episode(0)
    for key in episode.obs:
        np.testing.assert_array_equal(stored.obs[key], episode.obs[key], err_msg=key)
        np.testing.assert_array_equal(stored.final_obs[key], episode.obs[key][-1], err_msg=key)
    np.testing.assert_array_equal(stored.action, episode.action)


def test_many_episodes_commit_in_batches_and_read_back_in_runs(tmp_path: Path, marked: SimpleNamespace) -> None:
    path = tmp_path / "saved.zarr"
    episodes = [marked.episode(i, n) for i, n in enumerate([5, 1, 9, 3, 4, 7, 2])]
    with EpisodeWriter.create(path, marked.space(), marked.action_dim, fps=10, chunk_steps=4) as writer:
        writer.write_episode(episodes[0], source="teleop", success=True)  # after an ordinary episode
        assert writer.write_episodes(episodes[1:], source="hil", batch_frames=10) == 6  # several commits
        bad = marked.episode(99, 3)
        bad.terminated[0] = True
        with pytest.raises(StoreError, match="episode 1 of the batch goes on after a terminated"):
            writer.write_episodes([marked.episode(98, 2), bad], source="hil")
    store = EpisodeStore(path)
    assert store.n_episodes == 7  # the refused batch wrote nothing that counts
    np.testing.assert_array_equal(store.episode_ends, np.cumsum([len(e) for e in episodes]))
    assert [e.source for e in store.episodes] == ["teleop"] + ["hil"] * 6
    assert store.episodes[0].success is True and store.episodes[3].success is None
    assert all(e.has_final_obs for e in store.episodes)
    for i, read in enumerate(store.iter_episodes(batch_frames=6)):
        assert_episodes_equal(read, episodes[i])
        assert_episodes_equal(store.episode(i), episodes[i])
    picked = list(store.iter_episodes([6, 2, 3, 4], keys=["state/mark"]))
    assert [int(e.obs["state/mark"][0, 0]) for e in picked] == [6, 2, 3, 4]
    with pytest.raises(StoreError, match="no episode 7"):
        list(store.iter_episodes([7]))


def test_plain_zarr_reads_the_store(tmp_path: Path, marked: SimpleNamespace) -> None:
    path = tmp_path / "plain.zarr"
    episode = marked.episode(0, 9)
    with EpisodeWriter.create(path, marked.space(), marked.action_dim, fps=30) as writer:
        writer.write_episode(episode, source="sim")
    root = zarr.open_group(str(path), mode="r")  # what a user's own script does
    np.testing.assert_array_equal(root["data/action"][:], episode.action)
    np.testing.assert_array_equal(root["data/images/front"][:], episode.obs["images/front"])
    np.testing.assert_array_equal(root["meta/episode_ends"][:], [9])
    assert root.attrs["fps"] == 30.0 and root.attrs["obs_spec"]["images/front"]["dtype"] == "uint8"
    assert json.loads((path / "zarr.json").read_text())["zarr_format"] == 3


@pytest.mark.parametrize("codec", ["jpeg", "jpegxl"])
def test_lossy_image_codec_is_stated_and_close(tmp_path: Path, marked: SimpleNamespace, codec: str) -> None:
    path = tmp_path / f"{codec}.zarr"
    space = marked.space((64, 64, 3))
    episode = marked.episode(0, 4, image_shape=(64, 64, 3))
    smooth = np.broadcast_to(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (4, 64, 64, 3)).copy()
    episode = EpisodeArrays(**{**episode.__dict__, "obs": {**episode.obs, "images/front": smooth}})
    with EpisodeWriter.create(path, space, marked.action_dim, fps=10, image_codec=codec, image_quality=90) as writer:
        writer.write_episode(episode, source="sim")
    store = EpisodeStore(path)
    assert store.image_codec["name"] == codec and store.image_codec["lossless"] is False
    images = store.load("images/front")
    assert images.dtype == np.uint8 and np.abs(images.astype(int) - smooth).mean() < 3
    np.testing.assert_array_equal(store.load("action"), episode.action)  # numbers stay lossless
    root_codecs = zarr.open_array(str(path), path="data/images/front").metadata.to_dict()["codecs"]
    assert "imagecodecs" in json.dumps(root_codecs)


def test_appending_with_another_spec_is_refused_and_writes_nothing(tmp_path: Path, marked: SimpleNamespace) -> None:
    path = tmp_path / "s.zarr"
    with EpisodeWriter.create(path, marked.space(), marked.action_dim, fps=10) as writer:
        writer.write_episode(marked.episode(0, 5), source="sim")
    before = sorted((p.relative_to(path), p.stat().st_mtime_ns) for p in path.rglob("*") if p.is_file())
    with pytest.raises(StoreError, match=r"spec differs, nothing written: 'images/front' uint8 \[4, 4, 3\] vs stored uint8 \[8, 6, 3\]"):
        EpisodeWriter.open(path, marked.space((4, 4, 3)), marked.action_dim)
    with pytest.raises(StoreError, match="action_dim 7 vs stored 4"):
        EpisodeWriter.create(path, marked.space(), 7, fps=10, exist_ok=True)
    with pytest.raises(StoreError, match="fps 30 differs"):
        EpisodeWriter.create(path, marked.space(), marked.action_dim, fps=30, exist_ok=True)
    with pytest.raises(StoreError, match="already exists"):
        EpisodeWriter.create(path, marked.space(), marked.action_dim, fps=10)
    after = sorted((p.relative_to(path), p.stat().st_mtime_ns) for p in path.rglob("*") if p.is_file())
    assert after == before
    with EpisodeWriter.create(path, marked.space(), marked.action_dim, fps=10, exist_ok=True) as writer:
        writer.write_episode(marked.episode(1, 3), source="sim")
    assert EpisodeStore(path).n_episodes == 2


def test_discarded_and_unfinished_episodes_never_appear(tmp_path: Path, marked: SimpleNamespace) -> None:
    path = tmp_path / "d.zarr"
    kept = marked.episode(0, 6)
    with EpisodeWriter.create(path, marked.space(), marked.action_dim, fps=10, chunk_steps=4) as writer:
        writer.begin_episode(source="teleop")
        for transition in list(marked.episode(9, 11).transitions())[:10]:
            writer.add_step(transition.obs, transition.action)
        writer.discard_episode()
        writer.write_episode(kept, source="teleop")
        writer.begin_episode(source="teleop")
        writer.add_step({k: v[0] for k, v in kept.obs.items()}, kept.action[0])
        assert EpisodeStore(path).n_episodes == 1  # a reader mid-episode sees only the committed one
    store = EpisodeStore(path)  # close() discarded the open episode
    assert store.n_episodes == 1 and store.array("data/action").shape[0] == 6
    assert_episodes_equal(store.episode(0), kept)


def test_bad_input_is_refused_with_the_reason(tmp_path: Path, marked: SimpleNamespace) -> None:
    path = tmp_path / "b.zarr"
    obs = marked.obs(0, 0)
    action = np.zeros(marked.action_dim, np.float32)
    with EpisodeWriter.create(path, marked.space(), marked.action_dim, fps=10) as writer:
        with pytest.raises(StoreError, match="no episode is open"):
            writer.add_step(obs, action)
        with pytest.raises(StoreError, match="source 'robot' is not one of"):
            writer.begin_episode(source="robot")
        writer.begin_episode(source="sim")
        with pytest.raises(StoreError, match="already open"):
            writer.begin_episode(source="sim")
        with pytest.raises(StoreError, match=r"observation 'images/front' has shape \(1, 8, 6\)"):
            writer.add_step({**obs, "images/front": obs["images/front"][..., 0]}, action)
        with pytest.raises(StoreError, match="'images/front' must be uint8"):
            writer.add_step({**obs, "images/front": obs["images/front"].astype(np.float32)}, action)
        with pytest.raises(StoreError, match="observation keys"):
            writer.add_step({"state/mark": obs["state/mark"]}, action)
        with pytest.raises(StoreError, match=r"action has shape \(1, 3\)"):
            writer.add_step(obs, action[:3])
        with pytest.raises(StoreError, match="no steps"):
            writer.end_episode(success=None)
        writer.add_step(obs, action, terminated=True)
        with pytest.raises(StoreError, match="follows a terminated"):
            writer.add_step(obs, action)
        with pytest.raises(StoreError, match="another process is writing"):
            EpisodeWriter.open(path)
        writer.end_episode(success=False)
    with pytest.raises(StoreError, match="images must be uint8"):
        bad = gym.spaces.Dict({"images/front": gym.spaces.Box(0, 1, (4, 4, 3), np.float32)})
        EpisodeWriter.create(tmp_path / "c.zarr", bad, 2, fps=10)
    with pytest.raises(StoreError, match="not a zarr store"):
        EpisodeStore(tmp_path / "missing.zarr")
    assert not (tmp_path / "c.zarr").exists()


def test_large_frames_are_a_file_each_and_read_back_bit_exact(tmp_path: Path, marked: SimpleNamespace) -> None:
    from tether.datasets.verify import verify

    path, shape = tmp_path / "vga.zarr", (480, 640, 3)  # 900 KiB a frame: not sharded
    episodes = [marked.episode(i, n, image_shape=shape) for i, n in enumerate([3, 2])]
    with EpisodeWriter.create(path, marked.space(shape), marked.action_dim, fps=30) as writer:
        writer.write_episode(episodes[0], source="teleop")
        writer.begin_episode(source="teleop")  # discarded: its frame files go
        writer.add_step(marked.obs(9, 0, shape), episodes[1].action[0])
        writer.discard_episode()
        writer.write_episode(episodes[1], source="teleop")
    store = EpisodeStore(path)
    assert store.array("data/images/front").shards is None
    frames = sorted(p.relative_to(path / "data/images/front").as_posix()
                    for p in (path / "data/images/front/c").rglob("*") if p.is_file())
    assert frames == [f"c/{t}/0/0/0" for t in range(5)]
    for i, episode in enumerate(episodes):
        assert_episodes_equal(store.episode(i), episode)
    assert verify(path).ok
