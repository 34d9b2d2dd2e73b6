"""The observation encoder's state path: task positions relative to the TCP, their near-field squashing, and a
normalisation fitted once on the first training batch and carried by the checkpoint."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from tether.policies.networks import STATE_CLIP, EncoderConfig, ObservationEncoder
from tether.policies.sac import SACAgent, SACConfig
from tether.spaces import GRIPPER, TCP_POSE

CUBE = "state/cube_pos"


def _space() -> gym.spaces.Dict:
    dims = {TCP_POSE: 7, GRIPPER: 1, CUBE: 3, "state/cube_quat": 4}
    return gym.spaces.Dict({k: gym.spaces.Box(-np.inf, np.inf, (d,), np.float32) for k, d in dims.items()})


def _obs(n: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    obs = {k: torch.as_tensor(rng.normal(0, 0.1, (n, box.shape[0])), dtype=torch.float32)
           for k, box in _space().spaces.items()}
    obs[CUBE] = obs[CUBE] + torch.tensor([0.5, 0.0, 0.025])
    return obs


def test_relative_and_near_field_positions_follow_the_raw_state() -> None:
    encoder = ObservationEncoder(_space(), EncoderConfig(normalize_state=False, near_scale=0.02))
    assert encoder.relative_keys == [CUBE]  # cube_quat is no position; the TCP is the reference
    obs = _obs(4, np.random.default_rng(0))
    _, state = encoder.split(obs)
    assert state.shape == (4, 7 + 1 + 3 + 4 + 6) and encoder.feature_dim == 21
    relative = obs[CUBE] - obs[TCP_POSE][:, :3]
    torch.testing.assert_close(state[:, 15:18], relative)
    torch.testing.assert_close(state[:, 18:21], torch.tanh(relative / 0.02))
    plain = ObservationEncoder(_space(), EncoderConfig(normalize_state=False, relative_positions=False))
    assert plain.feature_dim == 15


def test_normalisation_is_fitted_once_then_kept_in_the_checkpoint(tmp_path) -> None:
    rng = np.random.default_rng(0)
    agent = SACAgent(_space(), 4, SACConfig(hidden_dims=(16, 16), batch_size=8, utd_ratio=1), seed=0)
    assert agent.encoder.needs_fit
    first = _obs(256, rng)
    agent.encoder.fit_state(first)
    _, state = agent.encoder.split(first)
    # Standardised on the batch it was fitted on; near-constant dimensions are divided by the floor only.
    assert state.mean(0).abs().max() < 1e-4 and state.abs().max() <= STATE_CLIP
    assert not agent.encoder.needs_fit
    later = _obs(8, rng)
    later[CUBE] += 1.0  # far outside the fitted spread: clipped, not refitted
    mean = agent.encoder.state_mean.clone()
    agent.save(tmp_path / "ckpt")
    loaded = SACAgent.load(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.encoder.state_mean, mean)
    torch.testing.assert_close(loaded.encoder.split(later)[1], agent.encoder.split(later)[1])
    assert not loaded.encoder.needs_fit and loaded.encoder.split(later)[1].abs().max() == STATE_CLIP


def test_the_first_update_fits_both_encoders() -> None:
    from tether.types import Batch

    rng = np.random.default_rng(0)
    agent = SACAgent(_space(), 4, SACConfig(hidden_dims=(16, 16), batch_size=8, utd_ratio=1), seed=0)
    obs = {k: v.numpy() for k, v in _obs(8, rng).items()}
    batch = Batch(obs=obs, action=rng.uniform(-1, 1, (8, 4)).astype(np.float32), reward=np.zeros(8, np.float32),
                  next_obs=obs, terminated=np.zeros(8, bool), intervened=np.zeros(8, bool))
    agent.update(batch)
    assert not agent.encoder.needs_fit and not agent.target_encoder.needs_fit
    torch.testing.assert_close(agent.target_encoder.state_std, agent.encoder.state_std)
    assert float(agent.encoder.state_std.min()) == pytest.approx(EncoderConfig().state_std_floor)  # the floor held
