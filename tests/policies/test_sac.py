"""The SAC agent: ensemble independence, targets, temperature, augmentation, grasp classes, UTD."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import save_file

from tether.policies.networks import (
    CriticEnsemble,
    EncoderConfig,
    EnsembleLayerNorm,
    EnsembleLinear,
    POOL_TEMPERATURE,
    ImageEncoder,
    cached_key,
    random_shift,
)
from tether.policies.sac import (
    GRASP_CLOSE,
    GRASP_COMMANDS,
    GRASP_OPEN,
    GRASP_STAY,
    SACAgent,
    SACConfig,
    grasp_class,
    polyak_update,
    temperature_loss,
)
from tether.spaces import gripper_command
from tether.types import Batch

SMALL = dict(hidden_dims=(32, 32), batch_size=16, utd_ratio=1, critic_actor_ratio=1)  # one step of each per update
SMALL_ENCODER = EncoderConfig(channels=(8, 8), kernels=(3, 3), strides=(2, 1), groups=4, latent_dim=8)


def _member_params(critic: CriticEnsemble) -> list[torch.Tensor]:
    return [
        p for m in critic.modules() if isinstance(m, (EnsembleLinear, EnsembleLayerNorm)) for p in m.parameters()
    ]


@pytest.mark.parametrize("members", [2, 10])
def test_ensemble_members_are_independent(members: int) -> None:
    torch.manual_seed(0)
    critic = CriticEnsemble(members, 6, 3, (16, 16), layer_norm=True)
    features, action = torch.randn(5, 6), torch.randn(5, 3)
    q = critic(features, action)
    assert q.shape == (members, 5)
    # Members start from different weights and so give different values.
    assert all(not torch.allclose(q[0], q[e]) for e in range(1, members))
    # A loss on member 1 alone moves member 1's slice of every parameter and nothing else.
    q[1].pow(2).sum().backward()
    for param in _member_params(critic):
        grad = param.grad
        assert grad is not None and grad[1].abs().sum() > 0
        others = torch.cat([grad[:1].flatten(), grad[2:].flatten()])
        assert torch.count_nonzero(others) == 0


def test_ensemble_matches_members_evaluated_one_by_one() -> None:
    torch.manual_seed(0)
    critic = CriticEnsemble(3, 4, 2, (8,), layer_norm=True)
    features, action = torch.randn(7, 4), torch.randn(7, 2)
    x = torch.cat([features, action], -1)
    lin1, norm, _, lin2 = critic.net.net
    for e in range(3):
        h = x @ lin1.weight[e] + lin1.bias[e]
        h = torch.nn.functional.layer_norm(h, (8,)) * norm.weight[e] + norm.bias[e]
        expected = (h.relu() @ lin2.weight[e] + lin2.bias[e]).squeeze(-1)
        torch.testing.assert_close(critic(features, action)[e], expected)


def test_ensemble_evaluates_a_subset_of_members_as_the_full_ensemble_does() -> None:
    # REDQ's target reads only the drawn members; they must be the same members, in the order drawn.
    torch.manual_seed(0)
    critic = CriticEnsemble(5, 4, 2, (8, 8), layer_norm=True)
    features, action = torch.randn(7, 4), torch.randn(7, 2)
    torch.testing.assert_close(critic(features, action, [3, 0]), critic(features, action)[[3, 0]])


def test_redq_target_is_the_min_over_the_drawn_pair(h) -> None:
    config = SACConfig(**SMALL, grasp_critic=False, discount=0.5)
    agent = SACAgent(h.state_space(), h.ACTION_DIM, config, seed=0)
    batch = h.random_batch(h.state_space(), 16, np.random.default_rng(0))
    obs, next_obs = agent._tensors(batch.obs), agent._tensors(batch.next_obs)
    generator_state = agent.generator.get_state()
    with torch.no_grad():
        next_features = agent._features(agent.target_encoder, next_obs, augment=True)
        next_action, _ = agent.actor(next_features, agent.generator)
        pair = torch.randperm(10, generator=agent.generator)[:2]
        next_v = agent.target_critic(next_features, next_action)[pair].min(dim=0).values
    agent.generator.set_state(generator_state)
    reward, done = torch.as_tensor(batch.reward), torch.as_tensor(batch.terminated, dtype=torch.float32)
    q = agent.critic(agent._features(agent.encoder, obs, augment=False), torch.as_tensor(batch.action)).detach()
    human = torch.as_tensor(batch.intervened)
    _, metrics = agent._critic_step(obs, next_obs, torch.as_tensor(batch.action), reward, done, human)
    expected = (q - (reward + 0.5 * (1 - done) * next_v)).pow(2).mean()
    torch.testing.assert_close(metrics["critic_loss"], expected)


def test_polyak_moves_target_by_tau() -> None:
    online, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.clone() for p in target.parameters()]
    polyak_update(target, online, 0.005)
    for t, b, o in zip(target.parameters(), before, online.parameters()):
        torch.testing.assert_close(t, 0.995 * b + 0.005 * o)


def test_agent_update_moves_targets_toward_online_networks(h) -> None:
    rng = np.random.default_rng(0)
    agent = SACAgent(h.state_space(), h.ACTION_DIM, SACConfig(**SMALL), seed=0)
    targets = [agent.target_critic, agent.target_grasp]
    onlines = [agent.critic, agent.grasp]
    before = [[p.clone() for p in t.parameters()] for t in targets]
    agent.update(h.random_batch(h.state_space(), 16, rng))
    for target, online, old in zip(targets, onlines, before):
        for t, o, b in zip(target.parameters(), online.parameters(), old):
            torch.testing.assert_close(t, torch.lerp(b, o, 0.005))
            assert not torch.equal(t, o)


@pytest.mark.parametrize(("log_prob", "direction"), [(2.0, +1), (-2.0, -1)])
def test_temperature_rises_when_entropy_is_below_target(log_prob: float, direction: int) -> None:
    # target entropy -1: entropy -log_prob = -2 is below it (alpha must rise), 2 is above (alpha must fall).
    log_alpha = torch.nn.Parameter(torch.tensor(math.log(0.01)))
    optimizer = torch.optim.SGD([log_alpha], lr=0.1)
    temperature_loss(log_alpha, torch.full((8,), log_prob), target_entropy=-1.0).backward()
    before = log_alpha.item()
    optimizer.step()
    assert np.sign(log_alpha.item() - before) == direction


def test_agent_target_entropy_defaults_to_half_the_continuous_dims(h) -> None:
    assert SACAgent(h.state_space(), 4, SACConfig(**SMALL)).target_entropy == -1.5  # 3 arm dims, gripper is discrete
    assert SACAgent(h.state_space(), 4, SACConfig(**SMALL, grasp_critic=False)).target_entropy == -2.0


def test_random_shift_keeps_shape_and_crops_a_shifted_window() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(64, 3, 16, 20)
    shifted = random_shift(images, 4, generator)
    assert shifted.shape == images.shape and shifted.dtype == images.dtype
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4), mode="replicate")
    offsets = set()
    for b in range(64):
        matches = [
            (dy, dx) for dy in range(9) for dx in range(9)
            if torch.equal(shifted[b], padded[b, :, dy : dy + 16, dx : dx + 20])
        ]
        assert matches, f"image {b} is not a window of its padded input"
        offsets.add(matches[0])
    assert len(offsets) > 20  # each image draws its own shift
    assert torch.equal(random_shift(images, 0, generator), images)


def test_agent_augments_obs_and_next_obs_of_every_camera(h) -> None:
    agent = SACAgent(h.pixel_space(("front", "wrist")), h.ACTION_DIM, SACConfig(**SMALL, encoder=SMALL_ENCODER))
    obs = {k: torch.as_tensor(v) for k, v in h.random_obs(agent.observation_space, 4, np.random.default_rng(0)).items()}
    plain = agent._features(agent.encoder, obs, augment=False)
    augmented = agent._features(agent.encoder, obs, augment=True)
    assert plain.shape == augmented.shape == (4, 2 * 8 + 8)
    assert not torch.equal(plain[:, :16], augmented[:, :16])  # image features change
    torch.testing.assert_close(plain[:, 16:], augmented[:, 16:])  # state features do not


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (-1.0, GRASP_OPEN), (-0.5, GRASP_OPEN), (-0.4999, GRASP_STAY), (0.0, GRASP_STAY),
        (0.4999, GRASP_STAY), (0.5, GRASP_CLOSE), (1.0, GRASP_CLOSE),
    ],
)  # fmt: skip
def test_grasp_classes_at_the_boundaries(command: float, expected: int) -> None:
    assert int(grasp_class(torch.tensor([command]))[0]) == expected
    # The class's own command means the same thing to the arm as the operator's command did.
    assert gripper_command(GRASP_COMMANDS[expected]) == gripper_command(command)


def test_grasp_penalty_only_when_a_command_moves_the_gripper(h) -> None:
    config = SACConfig(**SMALL, discount=0.5)
    agent = SACAgent(h.state_space(), h.ACTION_DIM, config, seed=0)
    rng = np.random.default_rng(0)
    batch = h.random_batch(h.state_space(), 4, rng)
    batch.action[:, -1] = [1.0, 1.0, 0.0, -1.0]  # close, close, stay, open
    batch.next_obs["state/gripper"][:] = batch.obs["state/gripper"]
    batch.next_obs["state/gripper"][[0, 2], 0] += 0.5  # gripper moved in rows 0 (close) and 2 (stay)
    obs, next_obs = agent._tensors(batch.obs), agent._tensors(batch.next_obs)
    features = agent._features(agent.encoder, obs, augment=False)
    next_features = agent._features(agent.target_encoder, next_obs, augment=False)
    q_before = agent.grasp(features).gather(-1, grasp_class(torch.as_tensor(batch.action[:, -1]))[:, None]).squeeze(-1)
    loss = float(agent._grasp_step(
        features.detach(), next_features, obs, next_obs, torch.as_tensor(batch.action),
        torch.zeros(4), torch.ones(4),  # reward 0, terminated: the target is the penalty alone
        torch.zeros(4, dtype=torch.bool),
    )["grasp_loss"])
    target = torch.tensor([config.grasp_penalty, 0.0, 0.0, 0.0])
    assert loss == pytest.approx((q_before - target).pow(2).mean().item(), rel=1e-5)


def test_grasp_margin_ranks_a_persons_class_above_the_others_on_their_rows_only(h) -> None:
    config = SACConfig(**SMALL, grasp_margin=0.1)
    agent = SACAgent(h.state_space(), h.ACTION_DIM, config, seed=0)
    batch = h.random_batch(h.state_space(), 4, np.random.default_rng(0))
    batch.action[:, -1] = [1.0, 1.0, -1.0, -1.0]  # close, close, open, open
    human = torch.tensor([True, False, True, False])
    obs, next_obs = agent._tensors(batch.obs), agent._tensors(batch.next_obs)
    features = agent._features(agent.encoder, obs, augment=False)
    next_features = agent._features(agent.target_encoder, next_obs, augment=False)
    q_all = agent.grasp(features).detach()
    classes = grasp_class(torch.as_tensor(batch.action[:, -1]))
    td = (q_all.gather(-1, classes[:, None]).squeeze(-1) - 0.0).pow(2).mean()  # reward 0, terminated, no move
    margins = torch.full((4, 3), 0.1).scatter_(-1, classes[:, None], 0.0)
    term = ((q_all + margins).amax(-1) - q_all.gather(-1, classes[:, None]).squeeze(-1))[human].mean()
    batch.next_obs["state/gripper"][:] = batch.obs["state/gripper"]
    loss = float(agent._grasp_step(features.detach(), next_features, obs, agent._tensors(batch.next_obs),
                                   torch.as_tensor(batch.action), torch.zeros(4), torch.ones(4), human)["grasp_loss"])
    assert loss == pytest.approx(float(td + term), rel=1e-5)


def test_utd_is_enforced_per_update(h) -> None:
    rng = np.random.default_rng(0)
    config = SACConfig(**{**SMALL, "utd_ratio": 4, "critic_actor_ratio": 2})
    agent = SACAgent(h.state_space(), h.ACTION_DIM, config)
    metrics = agent.update(h.random_batch(h.state_space(), 4 * 16, rng))
    assert (metrics["critic_updates"], metrics["actor_updates"]) == (4, 2)
    with pytest.raises(ValueError, match="does not split into utd_ratio=4"):
        agent.update(h.random_batch(h.state_space(), 30, rng))


def test_bc_term_pulls_the_actor_toward_what_a_person_did_on_their_rows_only(h) -> None:
    batch = h.random_batch(h.state_space(), 16, np.random.default_rng(0))
    batch.action[:, :3] = 0.6  # what the operator did, everywhere

    def gap_after_training(bc_weight: float, person_acted: bool) -> float:
        batch.intervened[:] = person_acted
        config = SACConfig(**SMALL, bc_weight=bc_weight, actor_lr=3e-4)  # 60 steps: the critics' rate for the actor
        agent = SACAgent(h.state_space(), h.ACTION_DIM, config, seed=0)
        metrics = [agent.update(batch) for _ in range(60)][-1]
        assert (metrics["bc_loss"] > 0) == (bc_weight > 0 and person_acted)
        with torch.no_grad():
            mean = agent.actor.mode(agent._features(agent.encoder, agent._tensors(batch.obs), augment=False))
        return (mean - 0.6).abs().mean().item()

    assert gap_after_training(1.0, person_acted=True) < 0.5 * gap_after_training(0.0, person_acted=True)
    # Rows the policy acted on carry no BC term: the same run as plain SAC, update for update.
    assert gap_after_training(1.0, person_acted=False) == gap_after_training(0.0, person_acted=False)


def test_redq_target_uses_a_subset_and_all_settings_are_validated(h) -> None:
    config = SACConfig(**SMALL)
    assert (config.num_critics, config.critic_subsample) == (10, 2)
    agent = SACAgent(h.state_space(), h.ACTION_DIM, config)
    metrics = agent.update(h.random_batch(h.state_space(), 16, np.random.default_rng(0)))
    assert math.isfinite(metrics["critic_loss"])
    with pytest.raises(ValidationError, match="critic_subsample 3 exceeds num_critics 2"):
        SACConfig(num_critics=2, critic_subsample=3)
    with pytest.raises(ValidationError, match="extra"):
        SACConfig(gamma=0.99)


def test_pixel_agent_learns_encoder_through_the_critic_only(h) -> None:
    rng = np.random.default_rng(0)
    space = h.pixel_space()
    agent = SACAgent(space, h.ACTION_DIM, SACConfig(**SMALL, encoder=SMALL_ENCODER))
    trunk_before = [p.clone() for p in agent.encoder.parameters()]
    agent.update(h.random_batch(space, 16, rng))
    assert any(not torch.equal(a, b) for a, b in zip(agent.encoder.parameters(), trunk_before))
    assert all(p not in set(agent.encoder.parameters()) for p in agent.actor_optimizer.param_groups[0]["params"])
    action = agent.act({k: v[0] for k, v in h.random_obs(space, 1, rng).items()})
    assert action.shape == (h.ACTION_DIM,) and action.dtype == np.float32
    assert np.all(np.abs(action) <= 1) and action[-1] in GRASP_COMMANDS


def test_backbone_loads_from_safetensors_and_can_be_frozen(h, tmp_path) -> None:
    source = ImageEncoder(SMALL_ENCODER, 32, 32)
    path = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in source.trunk.state_dict().items()}, str(path))
    config = SMALL_ENCODER.model_copy(update={"backbone": path, "freeze_backbone": True})
    agent = SACAgent(h.pixel_space(), h.ACTION_DIM, SACConfig(**SMALL, encoder=config))
    trunk = agent.encoder.encoders["images__front"].trunk
    for name, value in source.trunk.state_dict().items():
        torch.testing.assert_close(trunk.state_dict()[name], value)
    agent.update(h.random_batch(h.pixel_space(), 16, np.random.default_rng(0)))
    for name, value in source.trunk.state_dict().items():
        torch.testing.assert_close(trunk.state_dict()[name], value)  # frozen: unchanged by training
    wrong = EncoderConfig(channels=(16, 16), kernels=(3, 3), strides=(2, 1), groups=4, backbone=path)
    with pytest.raises(ValueError, match=r"backbone .*backbone.safetensors: conv.0.bias has shape \[8\], the trunk needs \[16\]"):
        ImageEncoder(wrong, 32, 32)
    with pytest.raises(FileNotFoundError, match="file not found"):
        ImageEncoder(SMALL_ENCODER.model_copy(update={"backbone": tmp_path / "nope.safetensors"}), 32, 32)


def test_backbone_file_sets_the_pool_temperature_and_frozen_cameras_train_on_cached_features(h, tmp_path) -> None:
    source = ImageEncoder(SMALL_ENCODER, 32, 32)
    path = tmp_path / "backbone.safetensors"
    save_file({**{k: v.contiguous() for k, v in source.trunk.state_dict().items()},
               POOL_TEMPERATURE: torch.tensor(-1.5)}, str(path))
    config = SACConfig(**SMALL, encoder=SMALL_ENCODER.model_copy(update={"backbone": path, "freeze_backbone": True}))
    space = h.pixel_space()
    agent = SACAgent(space, h.ACTION_DIM, config)
    assert agent.encoder.cached_keys == ["images/front"]
    assert agent.encoder.encoders["images__front"].pool.log_temperature.item() == -1.5
    batch = h.random_batch(space, 16, np.random.default_rng(0))
    cached = Batch(**{**batch.__dict__, "obs": _cached(agent, batch.obs), "next_obs": _cached(agent, batch.next_obs)})
    assert "images/front" not in cached.obs and cached.obs[cached_key("images/front")].shape == (16, 16)
    # The cached path gives the features the image path gives, without augmentation.
    features = [agent._features(agent.encoder, agent._tensors(obs), augment=False) for obs in (batch.obs, cached.obs)]
    torch.testing.assert_close(features[0], features[1])
    frozen = {k: v.clone() for k, v in agent.encoder.state_dict().items() if ".trunk." in k or ".pool." in k}
    projection = agent.encoder.encoders["images__front"].project[0].weight.clone()
    metrics = agent.update(cached)
    assert math.isfinite(metrics["critic_loss"])
    assert all(torch.equal(agent.encoder.state_dict()[k], v) for k, v in frozen.items())
    assert not torch.equal(agent.encoder.encoders["images__front"].project[0].weight, projection)


def _cached(agent: SACAgent, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    images = {k: obs[k] for k in agent.encoder.cached_keys}
    return {**{k: v for k, v in obs.items() if k not in images}, **agent.cache_features(images)}


def test_keypoint_shift_moves_every_keypoint_of_a_row_by_one_offset_within_the_pad() -> None:
    encoder = ImageEncoder(SMALL_ENCODER, 32, 32)
    keypoints = torch.rand(64, 16) * 2 - 1
    shifted = encoder.shift_keypoints(keypoints, 4, torch.Generator().manual_seed(0))
    offsets = (shifted - keypoints).view(64, 8, 2)
    torch.testing.assert_close(offsets, offsets[:, :1].expand_as(offsets))  # one (dx, dy) per row
    pixels = offsets[:, 0] * 32 / 2
    torch.testing.assert_close(pixels, pixels.round())
    assert pixels.abs().max() == 4 and len(pixels.unique()) > 5
    assert torch.equal(encoder.shift_keypoints(keypoints, 0), keypoints)


def test_bad_inputs_give_one_line_errors(h) -> None:
    agent = SACAgent(h.state_space(), h.ACTION_DIM, SACConfig(**SMALL))
    with pytest.raises(KeyError, match=r"missing keys \['state/gripper'\]"):
        agent.act({"state/tcp_pose": np.zeros(7, np.float32)})
    with pytest.raises(ValueError, match="grasp_critic needs 'state/gripper'"):
        SACAgent(gym.spaces.Dict({"state/tcp_pose": h.state_space()["state/tcp_pose"]}), 4, SACConfig(**SMALL))
    with pytest.raises(ValidationError, match="groups 3 does not divide channels"):
        EncoderConfig(groups=3)


def test_an_actor_started_at_zero_acts_zero_keeps_the_gripper_and_waits_for_its_critics(h) -> None:
    """The residual recipe's settings: no correction and 'stay' at first, small noise, the actor still for the
    critic warm-up."""
    config = SACConfig(**SMALL, actor_init_std=0.1, critic_warmup_updates=3, grasp_override_margin=0.05)
    agent = SACAgent(h.state_space(), h.ACTION_DIM, config, seed=0)
    obs = {k: v[0] for k, v in h.random_batch(h.state_space(), 1, np.random.default_rng(1)).obs.items()}
    assert agent.act(obs, deterministic=True).tolist() == [0.0] * (h.ACTION_DIM - 1) + [GRASP_COMMANDS[GRASP_STAY]]
    draws = np.stack([agent.act(obs) for _ in range(400)])
    assert draws[:, -1].tolist() == [0.0] * 400  # zero-initialised grasp critic: every class ties, 'stay' wins
    assert 0.08 < draws[:, :-1].std() < 0.12 and abs(draws[:, :-1].mean()) < 0.02
    assert agent.target_entropy == pytest.approx((h.ACTION_DIM - 1) * (0.5 * math.log(2 * math.pi * math.e * 0.01)))

    actor_before = [p.detach().clone() for p in agent.actor.parameters()]
    batch = h.random_batch(h.state_space(), 16, np.random.default_rng(2))
    for _ in range(3):
        metrics = agent.update(batch)
    assert (metrics["critic_updates"], metrics["actor_updates"]) == (3, 0)
    assert all(torch.equal(a, b) for a, b in zip(actor_before, agent.actor.parameters()))
    with torch.no_grad():  # however sure the grasp critic is, it does not act during the warm-up
        agent.grasp[-1].bias.copy_(torch.tensor([0.0, 0.0, 5.0]))
    assert agent.act(obs, deterministic=True)[-1] == GRASP_COMMANDS[GRASP_STAY]
    assert agent.update(batch)["actor_updates"] == 1

    with torch.no_grad():  # 'close' ahead of 'stay' by less than the margin: the base's gripper stays
        agent.grasp[-1].weight.zero_()
        agent.grasp[-1].bias.copy_(torch.tensor([0.0, 0.0, 0.04]))
    assert agent.act(obs, deterministic=True)[-1] == GRASP_COMMANDS[GRASP_STAY]
    with torch.no_grad():
        agent.grasp[-1].bias.copy_(torch.tensor([0.0, 0.0, 0.06]))
    assert agent.act(obs, deterministic=True)[-1] == GRASP_COMMANDS[GRASP_CLOSE]
