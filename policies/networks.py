"""Networks shared by the torch learners: MLPs, the stacked critic ensemble, the tanh-Gaussian
actor, per-camera image encoders and the random-shift augmentation.

Shapes use named axes: B batch, E ensemble member, F features, A action, C/H/W image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from pydantic import BaseModel, ConfigDict, Field, model_validator
from safetensors.torch import load_file
from torch import nn

from tether.spaces import TCP_POSE, is_image_key


class StrictConfig(BaseModel):
    """Base of the learner configs: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


TWIN_ENCODER = Path(__file__).parent / "assets" / "twin_encoder.safetensors"
"""The encoder pretrained on twin renders under domain randomisation that ships with tether (docs/encoder.md)."""


class EncoderConfig(StrictConfig):
    """One conv encoder per camera; the features of all cameras are concatenated with proprioception."""

    channels: tuple[int, ...] = (32, 32, 32, 32)
    """Output channels of each conv layer of the trunk (the 'backbone')."""
    kernels: tuple[int, ...] = (4, 3, 3, 3)
    """Kernel size of each conv layer."""
    strides: tuple[int, ...] = (4, 2, 1, 1)
    """Stride of each conv layer. A 4x4/4 patchifying first layer makes a 128x128 camera ~7x cheaper on a CPU
    than DrQ's 3x3/2 stem (measured), at the cost of a coarser 11x11 final map."""
    groups: int = Field(8, ge=1)
    """GroupNorm groups after each conv (must divide every channel count)."""
    pooling: Literal["spatial_softmax", "learned_embeddings"] = "spatial_softmax"
    """How the feature map becomes a vector: expected keypoints (spatial softmax) or SERL's learned spatial embeddings."""
    num_embeddings: int = Field(8, ge=1)
    """Learned spatial embeddings per channel (only for pooling 'learned_embeddings')."""
    latent_dim: int = Field(64, ge=1)
    """Size of each camera's feature vector after the projection (Linear + LayerNorm + tanh)."""
    backbone: Literal["twin"] | Path | None = None
    """Trunk weights to start from: a local safetensors file with `conv.<i>.weight`, ... and optionally the
    spatial softmax's `pool.log_temperature` (`tether train encoder` writes one), or 'twin' for the encoder
    tether ships (`TWIN_ENCODER`, pretrained on twin renders; docs/encoder.md). Nothing is downloaded."""
    freeze_backbone: bool = False
    """Keep the loaded trunk and pooling fixed, as HIL-SERL does with its pretrained ResNet: only the projection
    trains, so the learner computes each frame's pooled features once, when it enters the replay buffer, and
    updates run on those cached features (`ObservationEncoder.cache_features`). Without a backbone file the
    frozen trunk keeps its random initialisation: the baseline that measures what pretraining is worth."""
    aug_pad: int = Field(4, ge=0)
    """Random-shift augmentation: replicate-pad by this many pixels and crop back at a random offset (DrQ)."""
    relative_positions: bool = True
    """Append every task position (`state/<name>_pos`, 3-D in the base frame) minus the TCP position: where the
    object is from the gripper, the quantity a reaching or grasping policy acts on. Twin and real rigs publish the
    same keys, so the feature is the same on both."""
    near_scale: float | None = Field(0.02, gt=0)
    """With relative positions, also append tanh(relative / near_scale) (metres): a feature that resolves
    millimetres within a few centimetres of the object and saturates beyond. Normalised by the spread of the
    whole workspace, the last centimetre of an approach (grasp or stop short) is a few hundredths of a
    standard deviation, too fine for the networks to act on; None leaves it out."""
    normalize_state: bool = True
    """Standardise the state vector with a per-dimension mean and standard deviation fitted once, on the first
    training batch (demonstrations and early experience), and kept in the checkpoint: raw joint angles, metres
    and quaternions differ in scale by orders of magnitude, and a 2 cm spread of the cube would otherwise be
    invisible next to them."""
    state_std_floor: float = Field(0.01, gt=0)
    """Smallest standard deviation a state dimension is divided by (near-constant dimensions stay near 0)."""

    @model_validator(mode="after")
    def _consistent(self) -> EncoderConfig:
        lengths = {len(self.channels), len(self.kernels), len(self.strides)}
        if len(lengths) != 1 or not self.channels:
            raise ValueError(
                f"channels {list(self.channels)}, kernels {list(self.kernels)} and strides {list(self.strides)} "
                "need equal, non-zero length"
            )
        bad = [c for c in self.channels if c % self.groups]
        if bad:
            raise ValueError(f"groups {self.groups} does not divide channels {bad}")
        return self


# --- MLPs --------------------------------------------------------------------------------


def mlp(in_dim: int, hidden_dims: Sequence[int], out_dim: int, *, layer_norm: bool) -> nn.Sequential:
    """Linear -> (LayerNorm) -> ReLU per hidden layer, then a linear head (RLPD's critic/actor trunk)."""
    layers: list[nn.Module] = []
    for width in hidden_dims:
        layers.append(nn.Linear(in_dim, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(nn.ReLU())
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """The linear layers of E members, stacked: weight (E, in, out), bias (E, 1, out)."""

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features))
        # nn.Linear's default init, drawn separately for every member so no two start alike.
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    @staticmethod
    def member(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """One member: (B, in) with its weight (in, out) and bias (1, out) -> (B, out)."""
        return torch.addmm(bias, x, weight)


class EnsembleLayerNorm(nn.Module):
    """The LayerNorm affine parameters of E members, stacked: (E, 1, F)."""

    def __init__(self, members: int, features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, 1, features))
        self.bias = nn.Parameter(torch.zeros(members, 1, features))

    @staticmethod
    def member(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """One member: (B, F) with its affine (1, F) -> (B, F), through the fused native kernel."""
        return F.layer_norm(x, x.shape[-1:], weight[0], bias[0])


class EnsembleMLP(nn.Module):
    """E fully independent MLPs whose parameters are stacked along a leading member axis.

    The members are evaluated one after another on views of the stacks. On a CPU one member's
    (B, 256) GEMMs already fill a core, and one member's activations stay in cache where the
    (E, B, 256) tensors of a batched matmul do not: forward + backward of 10 members at batch 256
    took 26 ms this way and 36-42 ms as a bmm over the stacks (torch 2.13 CPU, 1 thread, shared
    2-core machine; 2 members: 5-7 ms vs 6-8.5 ms). `unbind` hands every member its views at once,
    and its backward writes all members' gradients into the stacks in one copy.
    """

    def __init__(
        self, members: int, in_dim: int, hidden_dims: Sequence[int], out_dim: int, *, layer_norm: bool
    ) -> None:
        super().__init__()
        self.members = members
        layers: list[nn.Module] = []
        for width in hidden_dims:
            layers.append(EnsembleLinear(members, in_dim, width))
            if layer_norm:
                layers.append(EnsembleLayerNorm(members, width))
            layers.append(nn.ReLU())
            in_dim = width
        layers.append(EnsembleLinear(members, in_dim, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, members: Sequence[int] | None = None) -> torch.Tensor:
        """(B, in) shared by all members -> (E, B, out); with `members`, only those: (len(members), B, out)."""
        stacked = [
            (layer, None, None) if isinstance(layer, nn.ReLU) else (layer, layer.weight.unbind(0), layer.bias.unbind(0))
            for layer in self.net
        ]
        outputs = []
        for e in range(self.members) if members is None else members:
            h = x
            for layer, weights, biases in stacked:
                h = layer(h) if weights is None else layer.member(h, weights[e], biases[e])
            outputs.append(h)
        return torch.stack(outputs)


class CriticEnsemble(nn.Module):
    """Q(s, a) for E independent members: features (B, F), action (B, A) -> (E, B)."""

    def __init__(self, members: int, feature_dim: int, action_dim: int, hidden_dims: Sequence[int], *, layer_norm: bool):
        super().__init__()
        self.net = EnsembleMLP(members, feature_dim + action_dim, hidden_dims, 1, layer_norm=layer_norm)

    def forward(
        self, features: torch.Tensor, action: torch.Tensor, members: Sequence[int] | None = None
    ) -> torch.Tensor:
        """All members, or only `members` (REDQ's target subset): (len(members), B)."""
        return self.net(torch.cat([features, action], dim=-1), members).squeeze(-1)


# --- actor -------------------------------------------------------------------------------


class TanhGaussianActor(nn.Module):
    """pi(a | s) = tanh(N(mu(s), sigma(s))); log-probabilities include the tanh change of variables."""

    def __init__(
        self,
        feature_dim: int,
        action_dim: int,
        hidden_dims: Sequence[int],
        *,
        layer_norm: bool,
        log_std_range: tuple[float, float],
    ) -> None:
        super().__init__()
        self.net = mlp(feature_dim, hidden_dims, 2 * action_dim, layer_norm=layer_norm)
        self.log_std_min, self.log_std_max = log_std_range

    def start_at_zero(self, std: float) -> None:
        """Make the policy the zero action at every state, with pre-tanh standard deviation `std`."""
        low, high = self.log_std_min, self.log_std_max
        if not low < math.log(std) < high:
            raise ValueError(f"actor std {std}: its log must lie inside log_std_range ({low}, {high})")
        head = self.net[-1]
        action_dim = head.out_features // 2
        with torch.no_grad():
            head.weight.zero_()
            head.bias[:action_dim] = 0.0
            head.bias[action_dim:] = math.atanh(2 * (math.log(std) - low) / (high - low) - 1)

    def distribution(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of the pre-tanh Gaussian, each (B, A)."""
        mean, log_std = self.net(features).chunk(2, dim=-1)
        # Squash log_std smoothly into its range instead of clipping, so its gradient never dies.
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (torch.tanh(log_std) + 1)
        return mean, log_std.exp()

    def forward(
        self, features: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised sample (B, A) in (-1, 1) and its log-probability (B,)."""
        return self.sample(*self.distribution(features), generator)

    @staticmethod
    def sample(
        mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward` from a distribution already computed, for a caller that also needs its mode."""
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        pre_tanh = mean + std * noise
        log_prob = (-0.5 * noise.pow(2) - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|.
        log_prob = log_prob - (2 * (math.log(2) - pre_tanh - F.softplus(-2 * pre_tanh))).sum(-1)
        return torch.tanh(pre_tanh), log_prob

    def mode(self, features: torch.Tensor) -> torch.Tensor:
        """The deterministic action tanh(mu), for evaluation."""
        return torch.tanh(self.distribution(features)[0])


# --- images ------------------------------------------------------------------------------


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """DrQ augmentation: replicate-pad (B, C, H, W) by `pad` and crop each image back at its own random offset."""
    if pad == 0:
        return images
    batch, _, height, width = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    shifts = torch.randint(0, 2 * pad + 1, (2, batch), generator=generator, device=images.device)
    rows = shifts[0, :, None] + torch.arange(height, device=images.device)  # (B, H)
    cols = shifts[1, :, None] + torch.arange(width, device=images.device)  # (B, W)
    index = torch.arange(batch, device=images.device)[:, None, None]
    # Advanced indexing on (B, H+2p, W+2p, C) gathers one shifted window per image.
    shifted = rearrange(padded, "b c h w -> b h w c")[index, rows[:, :, None], cols[:, None, :]]
    return rearrange(shifted, "b h w c -> b c h w")


class SpatialSoftmax(nn.Module):
    """Per channel, the expected (x, y) image coordinate under a softmax over pixels: (B, C, H, W) -> (B, 2C)."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.flatten(), ys.flatten()], dim=-1), persistent=False)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(x.flatten(2) / self.log_temperature.exp(), dim=-1)  # (B, C, HW)
        return (weights @ self.grid).flatten(1)


class SpatialLearnedEmbeddings(nn.Module):
    """SERL's pooling: each channel's map is dotted with K learned maps: (B, C, H, W) -> (B, C K)."""

    def __init__(self, channels: int, height: int, width: int, num_embeddings: int) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(channels, height * width, num_embeddings))
        nn.init.normal_(self.kernel, std=1.0 / math.sqrt(height * width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bcp,cpk->bck", x.flatten(2), self.kernel).flatten(1)


class ConvTrunk(nn.Module):
    """The backbone: convs, each followed by GroupNorm and ReLU. Its state dict is what a backbone file holds."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for out_channels, kernel, stride in zip(config.channels, config.kernels, config.strides):
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel, stride=stride),
                nn.GroupNorm(config.groups, out_channels),
                nn.ReLU(),
            ]
            in_channels = out_channels
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


POOL_TEMPERATURE = "pool.log_temperature"
"""Key of the spatial softmax's temperature in a backbone file (optional: a trunk-only file keeps the pool's own)."""


def load_backbone(trunk: nn.Module, path: Path, pool: nn.Module | None = None) -> None:
    """Load trunk weights from a local safetensors file; a missing, extra or misshapen tensor is a one-line error.
    With a `SpatialSoftmax` `pool`, the file's `pool.log_temperature` (if it has one) goes into it."""
    if not path.is_file():
        raise FileNotFoundError(f"backbone {path}: file not found")
    tensors = load_file(str(path))
    temperature = tensors.pop(POOL_TEMPERATURE, None)
    if temperature is not None and isinstance(pool, SpatialSoftmax):
        with torch.no_grad():
            pool.log_temperature.copy_(temperature.reshape(()))
    expected = trunk.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(f"backbone {path}: does not fit the trunk (missing {missing}, unexpected {unexpected})")
    for name, tensor in sorted(tensors.items()):
        if tensor.shape != expected[name].shape:
            raise ValueError(
                f"backbone {path}: {name} has shape {list(tensor.shape)}, the trunk needs {list(expected[name].shape)}"
            )
    trunk.load_state_dict(tensors)


class ImageEncoder(nn.Module):
    """One camera: uint8 (B, H, W, 3) -> (B, latent_dim) through trunk, spatial pooling and a projection."""

    def __init__(self, config: EncoderConfig, height: int, width: int) -> None:
        super().__init__()
        self.trunk = ConvTrunk(config)
        with torch.no_grad():
            _, channels, fh, fw = self.trunk(torch.zeros(1, 3, height, width)).shape
        if config.pooling == "spatial_softmax":
            self.pool: nn.Module = SpatialSoftmax(fh, fw)
            self.pooled_dim = 2 * channels
        else:
            self.pool = SpatialLearnedEmbeddings(channels, fh, fw, config.num_embeddings)
            self.pooled_dim = channels * config.num_embeddings
        if config.backbone is not None:
            load_backbone(self.trunk, TWIN_ENCODER if config.backbone == "twin" else config.backbone, self.pool)
        self.frozen = config.freeze_backbone
        if self.frozen:
            self.trunk.requires_grad_(False)
            self.pool.requires_grad_(False)
        self.image_width = width
        self.project = nn.Sequential(
            nn.Linear(self.pooled_dim, config.latent_dim), nn.LayerNorm(config.latent_dim), nn.Tanh()
        )

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        """`images` float (B, 3, H, W) in [0, 1] -> the pooled trunk features (B, pooled_dim): what is cached
        when the trunk and pooling are frozen."""
        return self.pool(self.trunk(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """`images` float (B, 3, H, W) in [0, 1]."""
        return self.project(self.pooled(images))

    def shift_keypoints(self, keypoints: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random shift in feature space: spatial-softmax keypoints (B, 2C) move as the image would under DrQ's
        shift of up to `pad` pixels, one offset per row for all of a camera's keypoints. Cached features cannot
        be shifted as images, and this costs nothing; with learned-embedding pooling there are no coordinates
        to move, so they pass unchanged."""
        if pad == 0 or not isinstance(self.pool, SpatialSoftmax):
            return keypoints
        pixels = torch.randint(-pad, pad + 1, (keypoints.shape[0], 1, 2), generator=generator, device=keypoints.device)
        offset = pixels.to(keypoints.dtype) * (2.0 / self.image_width)  # the grid spans [-1, 1] over the image
        return (keypoints.view(keypoints.shape[0], -1, 2) + offset).flatten(1)


def images_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [0, 1]."""
    return rearrange(images, "b h w c -> b c h w").float().div_(255.0)


STATE_CLIP = 10.0
"""Normalised state is clipped to +-this many standard deviations of the data it was fitted on."""


class ObservationEncoder(nn.Module):
    """Dict observation -> one feature vector: each camera's encoding, then the state vectors, concatenated.

    Keys are taken in sorted order so the layout is the same for twin, robot and checkpoint.
    """

    def __init__(self, observation_space: gym.spaces.Dict, config: EncoderConfig) -> None:
        super().__init__()
        self.image_keys = sorted(k for k in observation_space.spaces if is_image_key(k))
        self.state_keys = sorted(k for k in observation_space.spaces if not is_image_key(k))
        self.encoders = nn.ModuleDict()
        for key in self.image_keys:
            height, width, channels = observation_space[key].shape
            if channels != 3:
                raise ValueError(f"observation {key}: expected (H, W, 3) images, got shape {observation_space[key].shape}")
            self.encoders[_module_name(key)] = ImageEncoder(config, height, width)
        self.relative_keys = [
            k for k in self.state_keys if k.endswith("_pos") and observation_space[k].shape == (3,)
        ] if config.relative_positions and TCP_POSE in self.state_keys else []
        self.near_scale = config.near_scale
        per_relative = 3 if self.near_scale is None else 6
        state_dim = (sum(int(math.prod(observation_space[k].shape)) for k in self.state_keys)
                     + per_relative * len(self.relative_keys))
        self.normalize_state = config.normalize_state
        self.std_floor = config.state_std_floor
        self.register_buffer("state_mean", torch.zeros(state_dim))
        self.register_buffer("state_std", torch.ones(state_dim))
        self.register_buffer("state_fitted", torch.zeros((), dtype=torch.bool))
        self.feature_dim = state_dim + config.latent_dim * len(self.image_keys)

    @property
    def needs_fit(self) -> bool:
        return self.normalize_state and self.state_mean.numel() > 0 and not bool(self.state_fitted)

    @torch.no_grad()
    def fit_state(self, obs: dict[str, torch.Tensor]) -> None:
        """Fit the state normalisation on a batch of raw observations (once, before the first update)."""
        state = self._state(obs)
        self.state_mean.copy_(state.mean(dim=0))
        self.state_std.copy_(state.std(dim=0).clamp_min(self.std_floor))
        self.state_fitted.fill_(True)

    @property
    def cached_keys(self) -> list[str]:
        """Image keys whose trunk and pooling are frozen: their pooled features can be computed once per frame."""
        return [key for key in self.image_keys if self.encoders[_module_name(key)].frozen]

    @torch.no_grad()
    def cache_features(self, images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """uint8 frames (N, H, W, 3) per key of `cached_keys` -> float32 (N, pooled_dim) under `cached_key(key)`."""
        device = self.state_mean.device
        return {
            cached_key(key): self.encoders[_module_name(key)].pooled(
                images_to_float(torch.as_tensor(frames, device=device))
            ).cpu().numpy()
            for key, frames in images.items()
        }

    def forward(self, images: dict[str, torch.Tensor], state: torch.Tensor) -> torch.Tensor:
        """`images`: float (B, 3, H, W) per image key, or its cached features (B, pooled_dim) under
        `cached_key(key)`; `state`: (B, S) already concatenated -> (B, F)."""
        parts = []
        for key in self.image_keys:
            encoder = self.encoders[_module_name(key)]
            cached = images.get(cached_key(key))
            parts.append(encoder(images[key]) if cached is None else encoder.project(cached))
        return torch.cat([*parts, state], dim=-1)

    def augment(self, images: dict[str, torch.Tensor], pad: int,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """`split`'s images with DrQ's random shift: on the pixels, or on a camera's cached keypoints."""
        shifted = {}
        for key in self.image_keys:
            cached = cached_key(key)
            if cached in images:
                shifted[cached] = self.encoders[_module_name(key)].shift_keypoints(images[cached], pad, generator)
            else:
                shifted[key] = random_shift(images[key], pad, generator)
        return shifted

    def split(self, obs: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Raw batched tensors -> float images (B, 3, H, W) per camera (or the camera's cached features, passed
        through) and the state vector (B, S)."""
        images = {}
        for key in self.image_keys:
            cached = cached_key(key)
            if cached in obs:
                images[cached] = obs[cached]
            else:
                images[key] = images_to_float(obs[key])
        state = self._state(obs)
        if self.normalize_state:
            state = ((state - self.state_mean) / self.state_std).clamp(-STATE_CLIP, STATE_CLIP)
        return images, state

    def _state(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The raw state vector: the state keys in sorted order, then the positions relative to the TCP (and
        their near-field squashing)."""
        batch = next(iter(obs.values())).shape[0]
        state = [obs[key].float().reshape(batch, -1) for key in self.state_keys]
        if self.relative_keys:
            tcp = obs[TCP_POSE].float()[:, :3]
            relative = [obs[key].float() - tcp for key in self.relative_keys]
            state += relative
            if self.near_scale is not None:
                state += [torch.tanh(r / self.near_scale) for r in relative]
        return torch.cat(state, dim=-1) if state else torch.zeros(batch, 0, device=self.state_mean.device)


CACHED_PREFIX = "cached/"


def cached_key(image_key: str) -> str:
    """Where a batch holds the cached pooled features of camera `image_key` in place of its images."""
    return CACHED_PREFIX + image_key


def _module_name(key: str) -> str:
    """ModuleDict keys may not contain '.'; observation keys contain '/'."""
    return key.replace("/", "__")
