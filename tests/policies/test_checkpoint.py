"""Checkpoints: a directory of safetensors + JSON, a faithful round trip, and bit-exact resume."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from tether.policies.checkpoint import CONFIG_FILE, MODEL_FILE, TRAINING_FILE, CheckpointError
from tether.policies.networks import EncoderConfig
from tether.policies.sac import SACAgent, SACConfig

CONFIG = SACConfig(
    hidden_dims=(32, 32), batch_size=8, utd_ratio=2, critic_actor_ratio=2, num_critics=4, critic_subsample=2,
    encoder=EncoderConfig(channels=(8, 8), kernels=(3, 3), strides=(2, 1), groups=4, latent_dim=8),
)


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading must never reach pickle (safetensors and JSON only)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("checkpoint loading unpickled something")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)


def _batches(h, n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [h.random_batch(h.pixel_space(), 16, rng) for _ in range(n)]


def test_round_trip_restores_every_tensor_and_the_policy(h, tmp_path, no_unpickling) -> None:
    agent = SACAgent(h.pixel_space(), h.ACTION_DIM, CONFIG, seed=3)
    for batch in _batches(h, 2, 0):
        agent.update(batch)
    path = agent.save(tmp_path / "ckpt")
    assert sorted(p.name for p in path.iterdir()) == sorted([MODEL_FILE, TRAINING_FILE, CONFIG_FILE])
    config = json.loads((path / CONFIG_FILE).read_text())
    assert config["kind"] == "sac" and config["critic_updates"] == 4 and config["actor_updates"] == 2
    assert config["observation_space"]["images/front"] == {"shape": [32, 32, 3], "dtype": "uint8"}

    loaded = SACAgent.load(path)
    assert loaded.config == agent.config
    original, restored = agent.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for name in original:
        assert torch.equal(original[name], restored[name]), name
    assert int(loaded.critic_updates) == 4 and loaded.alpha.item() == agent.alpha.item()
    obs = {k: v[0] for k, v in h.random_obs(h.pixel_space(), 1, np.random.default_rng(1)).items()}
    np.testing.assert_array_equal(loaded.act(obs, deterministic=True), agent.act(obs, deterministic=True))


def test_resume_continues_training_bit_for_bit(h, tmp_path, no_unpickling) -> None:
    batches = _batches(h, 6, 1)
    straight = SACAgent(h.pixel_space(), h.ACTION_DIM, CONFIG, seed=7)
    for batch in batches:
        straight.update(batch)

    first = SACAgent(h.pixel_space(), h.ACTION_DIM, CONFIG, seed=7)
    for batch in batches[:3]:
        first.update(batch)
    first.save(tmp_path / "ckpt")
    resumed = SACAgent.load(tmp_path / "ckpt", training=True)
    for batch in batches[3:]:
        resumed.update(batch)

    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    for name, optimizer in straight._optimizers().items():
        ours, theirs = optimizer.state_dict(), resumed._optimizers()[name].state_dict()
        assert ours["param_groups"] == theirs["param_groups"]
        for index, moments in ours["state"].items():
            assert all(torch.equal(value, theirs["state"][index][k]) for k, value in moments.items()), name
    obs = {k: v[0] for k, v in h.random_obs(h.pixel_space(), 1, np.random.default_rng(2)).items()}
    np.testing.assert_array_equal(straight.act(obs), resumed.act(obs))  # the sampling RNG continues too


def test_missing_or_foreign_checkpoints_are_named(h, tmp_path) -> None:
    agent = SACAgent(h.state_space(), h.ACTION_DIM, CONFIG)
    path = agent.save(tmp_path / "ckpt")
    (path / TRAINING_FILE).unlink()
    SACAgent.load(path)  # acting needs no training state
    with pytest.raises(CheckpointError, match=f"ckpt: {TRAINING_FILE} is missing"):
        SACAgent.load(path, training=True)
    config = json.loads((path / CONFIG_FILE).read_text())
    (path / CONFIG_FILE).write_text(json.dumps({**config, "kind": "diffusion"}))
    with pytest.raises(ValueError, match="kind is 'diffusion', not 'sac'"):
        SACAgent.load(path)


def test_saving_over_a_checkpoint_replaces_it(h, tmp_path) -> None:
    agent = SACAgent(h.state_space(), h.ACTION_DIM, CONFIG)
    agent.save(tmp_path / "ckpt")
    agent.update(h.random_batch(h.state_space(), 16, np.random.default_rng(0)))
    agent.save(tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / CONFIG_FILE).read_text())["critic_updates"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda path: (path / MODEL_FILE).rename(path / "weights.bin"), f"ckpt: {MODEL_FILE} is missing"),
        (lambda path: (path / MODEL_FILE).write_bytes(b"\x00" * 64), "not a readable safetensors file"),
        (lambda path: (path / MODEL_FILE).write_bytes((path / MODEL_FILE).read_bytes()[:100]),
         "not a readable safetensors file"),
        (lambda path: (path / CONFIG_FILE).write_text("{not json"), "invalid JSON"),
        (lambda path: (path / CONFIG_FILE).write_text("[1, 2]"), "expected a JSON object, got list"),
        (lambda path: (path / CONFIG_FILE).write_bytes(b"\xff\xfe"), "not UTF-8 text"),
        (lambda path: (path / CONFIG_FILE).unlink(), f"ckpt: {CONFIG_FILE} is missing"),
    ],
)
def test_damaged_checkpoint_files_are_one_line_errors(h, tmp_path, damage, fragment) -> None:
    path = SACAgent(h.state_space(), h.ACTION_DIM, CONFIG).save(tmp_path / "ckpt")
    damage(path)
    with pytest.raises(CheckpointError, match=fragment) as error:
        SACAgent.load(path)
    assert "\n" not in str(error.value) and isinstance(error.value, ValueError)
