from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tether.datasets.episode import EpisodeArrays
from tether.datasets.replay import MixedSampler, ReplayBuffer
from tether.types import Batch, Transition


def _fill(buffer: ReplayBuffer, marked: SimpleNamespace, lengths: list[int], **kwargs: bool) -> list[EpisodeArrays]:
    episodes = [marked.episode(i, n, **kwargs) for i, n in enumerate(lengths)]
    for episode in episodes:
        buffer.add_episode(episode)
    return episodes


def _assert_true_pairs(batch: Batch, marked: SimpleNamespace, lengths: list[int]) -> None:
    """Every sampled next obs is the obs one step later in the same episode (the final obs at the end)."""
    for b in range(len(batch.action)):
        episode, step = batch.obs["state/mark"][b].astype(int)
        assert batch.next_obs["state/mark"][b].tolist() == [episode, step + 1]
        expected = marked.obs(episode, step + 1)
        for key in expected:
            np.testing.assert_array_equal(batch.next_obs[key][b], expected[key])
            np.testing.assert_array_equal(batch.obs[key][b], marked.obs(episode, step)[key])
        assert bool(batch.terminated[b]) == (step == lengths[episode] - 1)


def test_sampled_pairs_stay_inside_episodes_and_keep_the_final_obs(marked: SimpleNamespace) -> None:
    lengths = [5, 1, 7, 3]
    buffer = ReplayBuffer(marked.space(), marked.action_dim, capacity=100)
    episodes = _fill(buffer, marked, lengths)
    assert len(buffer) == sum(lengths)
    assert buffer.layout == (0, sum(lengths) + len(lengths))  # T + 1 slots per episode: images stored once
    batch = buffer.sample(400, np.random.default_rng(0))
    _assert_true_pairs(batch, marked, lengths)
    assert {tuple(m) for m in batch.obs["state/mark"].astype(int)} == {
        (e, t) for e, n in enumerate(lengths) for t in range(n)
    }
    # actions, rewards and flags travel with their step
    for b in range(len(batch.action)):
        episode, step = batch.obs["state/mark"][b].astype(int)
        np.testing.assert_array_equal(batch.action[b], episodes[episode].action[step])
        assert batch.reward[b] == episodes[episode].reward[step]
        assert batch.intervened[b] == episodes[episode].intervened[step]
    assert batch.obs["images/front"].dtype == np.uint8 and batch.action.dtype == np.float32


def test_ring_wraps_without_pairing_across_the_write_head(marked: SimpleNamespace) -> None:
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 9, size=40).tolist()
    buffer = ReplayBuffer(marked.space(), marked.action_dim, capacity=23)
    for i, n in enumerate(lengths):
        episode = marked.episode(i, n)
        for t, transition in enumerate(episode.transitions()):
            buffer.add(transition)
            # after every single add, whatever can be sampled is a true pair
            _assert_true_pairs(buffer.sample(64, rng), marked, lengths)
    stored = list(buffer.episodes())
    assert sum(len(e) for e in stored) == len(buffer) <= buffer.capacity
    newest = stored[-1]
    assert newest.obs["state/mark"][0].tolist() == [len(lengths) - 1, 0]
    marks = [tuple(m) for e in stored for m in e.obs["state/mark"].astype(int)]
    assert marks == sorted(marks)  # oldest first, in step order


def test_running_episode_is_sampleable_up_to_its_latest_step(marked: SimpleNamespace) -> None:
    buffer = ReplayBuffer(marked.space(), marked.action_dim, capacity=50)
    episode = marked.episode(0, 6)
    transitions = list(episode.transitions())
    for transition in transitions[:3]:
        buffer.add(transition)
    assert len(buffer) == 3
    batch = buffer.sample(200, np.random.default_rng(2))
    assert set(batch.obs["state/mark"][:, 1].astype(int)) == {0, 1, 2}
    _assert_true_pairs(batch, marked, [6])


def test_episode_left_without_done_flag_keeps_its_true_next_obs(marked: SimpleNamespace) -> None:
    buffer = ReplayBuffer(marked.space(), marked.action_dim, capacity=50)
    cut = list(marked.episode(0, 4).transitions())[:2]  # operator walked away: no terminated/truncated
    for transition in cut:
        buffer.add(transition)
    buffer.add_episode(marked.episode(1, 3))
    batch = buffer.sample(300, np.random.default_rng(3))
    _assert_true_pairs(batch, marked, [4, 3])
    cut_episode, next_episode = list(buffer.episodes())
    assert cut_episode.final_obs["state/mark"].tolist() == [0, 2]
    assert not cut_episode.terminated.any() and not cut_episode.truncated.any()
    assert len(next_episode) == 3


def test_episodes_round_trip_every_field(marked: SimpleNamespace) -> None:
    buffer = ReplayBuffer(marked.space(), marked.action_dim, capacity=64)
    originals = _fill(buffer, marked, [4, 6], terminated=False, truncated=True)
    for original, stored in zip(originals, buffer.episodes(), strict=True):
        for key in original.obs:
            np.testing.assert_array_equal(stored.obs[key], original.obs[key])
            np.testing.assert_array_equal(stored.final_obs[key], original.final_obs[key])
        for name in ("action", "policy_action", "reward", "terminated", "truncated", "intervened"):
            np.testing.assert_array_equal(getattr(stored, name), getattr(original, name))


def test_restored_layout_samples_identically_under_the_same_seed(marked: SimpleNamespace) -> None:
    buffer = ReplayBuffer(marked.space(), marked.action_dim, capacity=31)
    _fill(buffer, marked, [7, 5, 9, 6, 8, 4])  # wraps; the oldest episode lost its start
    restored = ReplayBuffer(marked.space(), marked.action_dim, capacity=31)
    restored.restore_layout(*buffer.layout)
    for episode in buffer.episodes():
        restored.add_episode(episode)
    assert len(restored) == len(buffer)
    a, b = buffer.sample(128, np.random.default_rng(7)), restored.sample(128, np.random.default_rng(7))
    for key in a.obs:
        np.testing.assert_array_equal(a.obs[key], b.obs[key])
        np.testing.assert_array_equal(a.next_obs[key], b.next_obs[key])
    np.testing.assert_array_equal(a.action, b.action)


def test_mixer_takes_fixed_fractions(marked: SimpleNamespace) -> None:
    online = ReplayBuffer(marked.space(), marked.action_dim, capacity=40)
    demos = ReplayBuffer(marked.space(), marked.action_dim, capacity=40)
    online.add_episode(marked.episode(0, 10))
    demos.add_episode(marked.episode(1, 10))
    rng = np.random.default_rng(4)
    batch = MixedSampler([online, demos]).sample(256, rng)
    assert (batch.obs["state/mark"][:, 0] == 0).sum() == 128
    assert (batch.obs["state/mark"][:, 0] == 1).sum() == 128
    _assert_true_pairs(batch, marked, [10, 10])
    mixer = MixedSampler([online, demos], fractions=[0.25, 0.75])
    assert mixer.counts(10) == [3, 7] and mixer.counts(256) == [64, 192]
    assert (mixer.sample(10, rng).obs["state/mark"][:, 0] == 1).sum() == 7
    # Split into UTD minibatches, every slice holds the mix, not some all-online and some all-demo.
    sources = MixedSampler([online, demos]).sample(256, rng, minibatches=4).obs["state/mark"][:, 0]
    assert [int((part == 1).sum()) for part in np.split(sources, 4)] == [32, 32, 32, 32]
    with pytest.raises(ValueError, match="minibatches"):
        mixer.sample(10, rng, minibatches=3)


def test_bad_input_is_refused_with_the_reason(marked: SimpleNamespace) -> None:
    buffer = ReplayBuffer(marked.space(), marked.action_dim, capacity=10)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(4, np.random.default_rng(0))
    good = next(marked.episode(0, 2).transitions())
    wrong_image = {**good.obs, "images/front": np.zeros((4, 4, 3), np.uint8)}
    with pytest.raises(ValueError, match=r"obs\['images/front'\]: shape \(4, 4, 3\)"):
        buffer.add(Transition(**{**good.__dict__, "obs": wrong_image}))
    with pytest.raises(ValueError, match="keys"):
        buffer.add(Transition(**{**good.__dict__, "next_obs": {"state/mark": good.obs["state/mark"]}}))
    with pytest.raises(ValueError, match="action: shape"):
        buffer.add(Transition(**{**good.__dict__, "action": np.zeros(3, np.float32)}))
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(marked.space(), marked.action_dim, capacity=1)
    with pytest.raises(ValueError, match="sum to 1"):
        MixedSampler([buffer, buffer], fractions=[0.5, 0.6])
    with pytest.raises(ValueError, match="buffer 1 is empty"):
        full = ReplayBuffer(marked.space(), marked.action_dim, capacity=10)
        full.add(good)
        MixedSampler([full, buffer]).sample(8, np.random.default_rng(0))


def test_cached_features_are_computed_once_per_frame_and_replace_the_frames_in_samples(marked: SimpleNamespace) -> None:
    calls: list[int] = []

    def encode(frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A stand-in for a frozen image encoder: each frame's mean brightness, and a count of frames seen."""
        calls.append(len(frames["images/front"]))
        return {"cached/images/front": frames["images/front"].reshape(len(frames["images/front"]), -1)
                .mean(axis=1, keepdims=True).astype(np.float32)}

    lengths = [4, 6, 3]
    buffer = ReplayBuffer(marked.space(), marked.action_dim, capacity=50)
    episodes = _fill(buffer, marked, lengths[:2])
    buffer.cache_features(encode, ["images/front"], chunk=4)
    assert sum(calls) == 12 and max(calls) == 4  # the stored frames, in chunks
    episodes += _fill(buffer, marked, lengths[2:])
    assert sum(calls) == 12 + 4 and max(calls) == 4  # then each new frame once (3 steps + the final obs)
    batch = buffer.sample(200, np.random.default_rng(0))
    assert "images/front" not in batch.obs and batch.obs["cached/images/front"].shape == (200, 1)
    for b in range(200):
        episode, step = batch.obs["state/mark"][b].astype(int)
        for obs, t in ((batch.obs, step), (batch.next_obs, step + 1)):
            frame = marked.obs(episode, t)["images/front"]
            assert obs["cached/images/front"][b, 0] == pytest.approx(frame.mean(), rel=1e-5)
    stored = list(buffer.episodes())  # what a checkpoint saves keeps the images
    np.testing.assert_array_equal(stored[2].obs["images/front"], episodes[2].obs["images/front"])
    with pytest.raises(ValueError, match=r"cache_features: keys \['images/side'\] are not in the buffer"):
        buffer.cache_features(encode, ["images/side"])
