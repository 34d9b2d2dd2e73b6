from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tether.datasets.replay import ReplayBuffer
from tether.datasets.replay_io import fill_replay, load_replay, replay_from_store, save_replay
from tether.datasets.store import EpisodeStore, EpisodeWriter, StoreError
from tether.datasets.verify import verify


def _assert_same_batches(a: ReplayBuffer, b: ReplayBuffer, seed: int) -> None:
    x, y = a.sample(256, np.random.default_rng(seed)), b.sample(256, np.random.default_rng(seed))
    for key in x.obs:
        np.testing.assert_array_equal(x.obs[key], y.obs[key])
        np.testing.assert_array_equal(x.next_obs[key], y.next_obs[key])
    for name in ("action", "reward", "terminated", "intervened"):
        np.testing.assert_array_equal(getattr(x, name), getattr(y, name))


def test_store_loads_into_a_buffer_with_true_pairs(tmp_path: Path, marked: SimpleNamespace) -> None:
    path = tmp_path / "demos.zarr"
    episodes = [marked.episode(i, n) for i, n in enumerate([5, 2, 8])]
    with EpisodeWriter.create(path, marked.space(), marked.action_dim, fps=10) as writer:
        for episode in episodes:
            writer.write_episode(episode, source="teleop")
    buffer = replay_from_store(path)
    assert len(buffer) == 15 and buffer.capacity == 18
    for stored, original in zip(buffer.episodes(), episodes, strict=True):
        for key in original.obs:
            np.testing.assert_array_equal(stored.obs[key], original.obs[key])
            np.testing.assert_array_equal(stored.final_obs[key], original.final_obs[key])
        np.testing.assert_array_equal(stored.policy_action, original.policy_action)
    batch = buffer.sample(100, np.random.default_rng(0))
    for b, (episode, step) in enumerate(batch.obs["state/mark"].astype(int)):
        assert batch.next_obs["state/mark"][b].tolist() == [episode, step + 1]


def test_saved_buffer_restores_and_samples_identically(tmp_path: Path, marked: SimpleNamespace) -> None:
    buffer = ReplayBuffer(marked.space(), marked.action_dim, capacity=40)
    for i, n in enumerate([9, 12, 7, 10, 8]):  # 51 slots through a 40-slot ring: it wrapped
        buffer.add_episode(marked.episode(i, n, terminated=i % 2 == 0, truncated=i % 2 == 1))
    for transition in list(marked.episode(5, 6).transitions())[:3]:  # an episode still running
        buffer.add(transition)
    path = tmp_path / "online.zarr"
    save_replay(buffer, path, source="hil", fps=10)
    assert verify(path).ok
    restored = load_replay(path)
    assert (restored.capacity, len(restored), restored.layout) == (buffer.capacity, len(buffer), buffer.layout)
    for seed in range(3):
        _assert_same_batches(buffer, restored, seed)
    # a learner keeps going after resume exactly as it would have
    for transition in list(marked.episode(5, 6).transitions())[3:]:
        buffer.add(transition)
        restored.add(transition)
    _assert_same_batches(buffer, restored, 9)
    save_replay(restored, path, source="hil", fps=10)  # overwrite an earlier save
    assert len(load_replay(path)) == len(restored)
    assert [p.name for p in tmp_path.iterdir()] == ["online.zarr"]


def test_buffer_spec_must_match_the_store(tmp_path: Path, marked: SimpleNamespace) -> None:
    path = tmp_path / "s.zarr"
    with EpisodeWriter.create(path, marked.space(), marked.action_dim, fps=10) as writer:
        writer.write_episode(marked.episode(0, 3), source="sim")
    other = ReplayBuffer(marked.space((4, 4, 3)), marked.action_dim, capacity=10)
    with pytest.raises(StoreError, match=r"spec differs: 'images/front' uint8 \[4, 4, 3\] vs stored uint8 \[8, 6, 3\]"):
        fill_replay(other, EpisodeStore(path))
    with pytest.raises(StoreError, match="not a saved replay buffer"):
        load_replay(path)
