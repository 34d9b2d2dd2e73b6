from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tether.datasets.sampler import SequenceSampler, TransitionSampler
from tether.datasets.store import EpisodeStore, EpisodeWriter

LENGTHS = [3, 1, 6, 4]


@pytest.fixture
def store(tmp_path: Path, marked: SimpleNamespace) -> EpisodeStore:
    """Four episodes; episode 3 was recorded without its final observation and did not terminate."""
    path = tmp_path / "s.zarr"
    with EpisodeWriter.create(path, marked.space(), marked.action_dim, fps=10, chunk_steps=4) as writer:
        for i, n in enumerate(LENGTHS[:3]):
            writer.write_episode(marked.episode(i, n), source="sim")
        writer.begin_episode(source="teleop")
        cut = marked.episode(3, 4, terminated=False, truncated=True)
        for t in range(4):
            writer.add_step({k: v[t] for k, v in cut.obs.items()}, cut.action[t], truncated=bool(cut.truncated[t]))
        writer.end_episode(success=None)
    return EpisodeStore(path)


@pytest.mark.parametrize("cache", [True, False])
def test_transitions_pair_within_episodes_and_use_the_final_obs(
    store: EpisodeStore, marked: SimpleNamespace, cache: bool
) -> None:
    sampler = TransitionSampler(store, cache=cache)
    assert len(sampler) == sum(LENGTHS) - 1  # episode 3's last step has no known next obs
    batch = sampler.sample(500, np.random.default_rng(0))
    marks = batch.obs["state/mark"].astype(int)
    assert {tuple(m) for m in marks} == {(e, t) for e, n in enumerate(LENGTHS) for t in range(n)} - {(3, 3)}
    for b, (episode, step) in enumerate(marks):
        expected_next = marked.obs(episode, step + 1)
        for key, value in expected_next.items():
            np.testing.assert_array_equal(batch.next_obs[key][b], value)
        np.testing.assert_array_equal(batch.action[b], marked.episode(episode, LENGTHS[episode]).action[step])
        assert batch.terminated[b] == (episode < 3 and step == LENGTHS[episode] - 1)


def test_cached_and_lazy_transitions_agree(store: EpisodeStore) -> None:
    a = TransitionSampler(store).sample(64, np.random.default_rng(5))
    b = TransitionSampler(store, cache=False).sample(64, np.random.default_rng(5))
    for key in a.obs:
        np.testing.assert_array_equal(a.obs[key], b.obs[key])
        np.testing.assert_array_equal(a.next_obs[key], b.next_obs[key])
    np.testing.assert_array_equal(a.reward, b.reward)


def test_sequence_windows_pad_at_edges_and_never_cross_episodes(store: EpisodeStore) -> None:
    sampler = SequenceSampler(store, n_obs_steps=2, horizon=4)
    assert len(sampler) == sum(LENGTHS)  # every step is once the current step
    first = sampler[0]  # episode 0, current step 0: one padded observation before it
    assert first["obs/state/mark"].tolist() == [[0, 0], [0, 0]]
    assert first["obs/images/front"].shape == (2, 8, 6, 3)
    assert first["action_is_pad"].tolist() == [True, False, False, False]
    last = sampler[2]  # episode 0 (3 steps), current step 2: actions run past the end
    assert last["obs/state/mark"].tolist() == [[0, 1], [0, 2]]
    assert last["action_is_pad"].tolist() == [False, False, True, True]
    np.testing.assert_array_equal(last["action"][2:], np.repeat(last["action"][1:2], 2, axis=0))
    single = sampler[3]  # episode 1 has one step: everything but it is padding
    assert single["obs/state/mark"].tolist() == [[1, 0], [1, 0]]
    assert single["action_is_pad"].tolist() == [True, False, True, True]
    batch = sampler.sample(300, np.random.default_rng(1))
    assert batch["action"].shape == (300, 4, 4) and batch["obs/state/mark"].shape == (300, 2, 2)
    episodes = batch["obs/state/mark"][..., 0]
    assert (episodes == episodes[:, :1]).all()  # one episode per window
    steps = batch["obs/state/mark"][..., 1]
    assert (np.diff(steps, axis=1) >= 0).all() and (np.diff(steps, axis=1) <= 1).all()


def test_sequence_padding_can_be_turned_off(store: EpisodeStore) -> None:
    sampler = SequenceSampler(store, n_obs_steps=1, horizon=3, pad_before=0, pad_after=0)
    assert len(sampler) == sum(max(n - 2, 0) for n in LENGTHS)
    assert not sampler.sample(100, np.random.default_rng(2))["action_is_pad"].any()
    with pytest.raises(ValueError, match="n_obs_steps <= horizon"):
        SequenceSampler(store, n_obs_steps=5, horizon=3)
    with pytest.raises(ValueError, match="no observation"):
        SequenceSampler(store, n_obs_steps=1, horizon=3, obs_keys=["images/wrist"])
