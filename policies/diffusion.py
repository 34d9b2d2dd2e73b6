"""Diffusion Policy (Chi et al., CNN variant): a conditional 1D temporal U-Net denoises an action chunk
given features of the last n_obs_steps observations; plus a flow-matching variant that samples in 1-4 steps.

Windows, with n_obs_steps To = 2, horizon H = 16, n_action_steps = 8, around the current step t:

    frame:   t-1  t   t+1 ...  t+7  t+8 ... t+14
    obs:     [o   o]                                    To observations ending at t
    action:  [a   a   a   ...  a    a   ...  a]         H actions from t - To + 1 (the U-Net's output)
    run:         [a   a   ...  a]                       n_action_steps executed from t, then re-plan

Shapes use named axes: B batch, T time (To or H), A action, F features, C/H/W image.
Everything the policy reads or returns is in physical units: min-max statistics of states and actions
live in the model's buffers and travel in model.safetensors (Diffusion Policy's normaliser-in-policy).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from diffusers.schedulers import DDIMScheduler, DDPMScheduler
from einops import rearrange
from pydantic import Field, model_validator
from torch import nn

from tether.policies.checkpoint import load_checkpoint, save_checkpoint
from tether.policies.chunking import ChunkedExecutor
from tether.policies.networks import SpatialSoftmax, StrictConfig, load_backbone
from tether.policies.sac import space_from_json, space_to_json
from tether import spaces
from tether.spaces import is_image_key
from tether.types import Observation

CHECKPOINT_KIND = "diffusion"
ACTION = "action"


class VisionConfig(StrictConfig):
    """Per-camera ResNet-18-style encoder: BatchNorm replaced by GroupNorm (it behaves with EMA and small
    batches, as in Diffusion Policy), global pooling replaced by keypoints from a spatial softmax."""

    widths: tuple[int, ...] = (64, 128, 256, 512)
    """Channels of each residual stage (ResNet-18: 64, 128, 256, 512); every stage after the first halves H, W."""
    blocks_per_stage: int = Field(2, ge=1)
    """Basic residual blocks per stage (ResNet-18: 2)."""
    group_size: int = Field(16, ge=1)
    """Channels per GroupNorm group (Diffusion Policy: channels // 16 groups)."""
    keypoints: int = Field(32, ge=1)
    """1x1-conv maps fed to the spatial softmax; each gives an expected (x, y)."""
    latent_dim: int = Field(64, ge=1)
    """Feature size per camera and time step."""
    crop_ratio: float = Field(0.9, gt=0.0, le=1.0)
    """Side of the crop relative to the image: random crop when training, centre crop when acting."""
    weights: Path | None = None
    """A local safetensors file with trunk weights to start from (names as `ResNetTrunk`); nothing is downloaded."""

    @model_validator(mode="after")
    def _groups_fit(self) -> VisionConfig:
        bad = [w for w in self.widths if w % self.group_size]
        if not self.widths or bad:
            raise ValueError(f"group_size {self.group_size} must divide every width, not {bad or 'an empty list'}")
        return self


class DiffusionConfig(StrictConfig):
    """The policy: windows, U-Net, vision encoder and the generative objective. Defaults follow the paper."""

    n_obs_steps: int = Field(2, ge=1)
    """Observations the policy conditions on (To)."""
    horizon: int = Field(16, ge=1)
    """Actions predicted per chunk (H), starting n_obs_steps - 1 steps in the past."""
    n_action_steps: int = Field(8, ge=1)
    """Actions executed from each chunk before re-planning (receding horizon); 8 was best in the paper."""
    action_targets: Literal["delta", "absolute"] = "delta"
    """What a chunk holds. delta: the env's normalised actions (displacements per tick), run open loop for
    n_action_steps ticks. absolute: TCP position targets (the measured position plus the step's displacement, in
    m; rotation and gripper as in the actions), and each tick commands the displacement from the TCP position it
    observes to its target, so the arm's lag and errors are corrected within a chunk instead of accumulating."""
    translation_scale: float = Field(0.02, gt=0)
    """Metres one unit of translation action moves the TCP per tick (the rig's arm.action_scale[0]); the trainer
    takes it from the store's rig. Absolute targets convert with it."""
    objective: Literal["ddpm", "flow"] = "ddpm"
    """ddpm: epsilon prediction, DDIM sampling. flow: rectified flow matching, Euler sampling in few steps."""
    train_timesteps: int = Field(100, ge=1)
    """DDPM training steps (squared-cosine schedule); also the scale of the flow time fed to the U-Net."""
    inference_steps: int | None = Field(None, ge=1)
    """Sampler steps: DDIM steps for ddpm (default 10), Euler steps for flow (default 2)."""
    down_dims: tuple[int, ...] = (256, 512, 1024)
    """U-Net channels per level; every level but the last halves the time axis."""
    kernel_size: int = Field(5, ge=1)
    """Temporal convolution kernel."""
    n_groups: int = Field(8, ge=1)
    """GroupNorm groups in the U-Net blocks."""
    step_embed_dim: int = Field(128, ge=2)
    """Sinusoidal embedding size of the diffusion step / flow time."""
    vision: VisionConfig = VisionConfig()
    """Encoder of every camera (one per camera, not shared)."""

    @model_validator(mode="after")
    def _consistent(self) -> DiffusionConfig:
        if self.n_obs_steps > self.horizon:
            raise ValueError(f"n_obs_steps {self.n_obs_steps} exceeds horizon {self.horizon}")
        if self.n_action_steps > self.executable_steps:
            raise ValueError(f"n_action_steps {self.n_action_steps} exceeds the {self.executable_steps} actions a "
                             f"chunk holds from the current step (horizon - n_obs_steps + 1)")
        stride = 2 ** (len(self.down_dims) - 1)
        if not self.down_dims or self.horizon % stride:
            raise ValueError(f"horizon {self.horizon} must be divisible by {stride} (2 ** (len(down_dims) - 1))")
        bad = [d for d in self.down_dims if d % self.n_groups]
        if bad:
            raise ValueError(f"n_groups {self.n_groups} does not divide down_dims {bad}")
        if self.objective == "ddpm" and self.sampler_steps > self.train_timesteps:
            raise ValueError(f"inference_steps {self.sampler_steps} exceeds train_timesteps {self.train_timesteps}")
        return self

    @property
    def sampler_steps(self) -> int:
        """Integration steps per chunk: inference_steps, or the objective's default."""
        if self.inference_steps is not None:
            return self.inference_steps
        return 10 if self.objective == "ddpm" else 2

    @property
    def executable_steps(self) -> int:
        """Actions of a chunk from the current step on: horizon - n_obs_steps + 1."""
        return self.horizon - self.n_obs_steps + 1


# --- normalisation -----------------------------------------------------------------------


class MinMaxNormaliser(nn.Module):
    """Maps each key's per-dimension [min, max] to [-1, 1]. A dimension that hardly varies in the data (a span
    under `MIN_SPAN`) is centred and scaled as if it spanned MIN_SPAN: dividing by its own span of, say, 1e-4
    would turn its noise, and any drift at deployment, into inputs of |z| in the hundreds.

    The statistics are buffers, so they are saved with the weights and a deployed policy works in physical units.
    """

    MIN_SPAN = 0.02
    """In the key's units (m, rad, normalised commands): 2 cm of a position, about 1 degree of an angle."""

    def __init__(self, dims: dict[str, int]) -> None:
        super().__init__()
        self.keys = sorted(dims)
        for key in self.keys:
            self.register_buffer(_buffer(key, "low"), -torch.ones(dims[key]))
            self.register_buffer(_buffer(key, "high"), torch.ones(dims[key]))

    def fit(self, arrays: dict[str, np.ndarray]) -> MinMaxNormaliser:
        """Set the statistics from data (N, d) per key."""
        for key in self.keys:
            values = torch.as_tensor(np.asarray(arrays[key], np.float32)).reshape(-1, self._low(key).shape[0])
            self._low(key).copy_(values.min(dim=0).values)
            self._high(key).copy_(values.max(dim=0).values)
        return self

    def _low(self, key: str) -> torch.Tensor:
        return getattr(self, _buffer(key, "low"))

    def _high(self, key: str) -> torch.Tensor:
        return getattr(self, _buffer(key, "high"))

    def _centre_scale(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        low, high = self._low(key), self._high(key)
        return (high + low) / 2, 2.0 / (high - low).clamp_min(self.MIN_SPAN)

    def normalise(self, key: str, x: torch.Tensor) -> torch.Tensor:
        centre, scale = self._centre_scale(key)
        return (x - centre) * scale

    def unnormalise(self, key: str, x: torch.Tensor) -> torch.Tensor:
        centre, scale = self._centre_scale(key)
        return x / scale + centre


def _buffer(key: str, which: str) -> str:
    """Buffer names may not contain '.' or '/'; observation keys contain '/'."""
    return f"{which}__{key.replace('/', '__')}"


# --- vision ------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """ResNet basic block with GroupNorm: conv3x3 -> GN -> ReLU -> conv3x3 -> GN, plus the (projected) input."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, group_size: int) -> None:
        super().__init__()
        groups = out_channels // group_size
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.GroupNorm(groups, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


class ResNetTrunk(nn.Module):
    """ResNet-18 layout (7x7/2 stem, 3x3/2 max-pool, stages of basic blocks) with GroupNorm: (B, 3, H, W) -> maps."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        first = config.widths[0]
        layers: list[nn.Module] = [nn.Conv2d(3, first, 7, stride=2, padding=3, bias=False),
                                   nn.GroupNorm(first // config.group_size, first), nn.ReLU(),
                                   nn.MaxPool2d(3, stride=2, padding=1)]
        in_channels = first
        for stage, width in enumerate(config.widths):
            for block in range(config.blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(in_channels, width, stride, config.group_size))
                in_channels = width
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def crop(images: torch.Tensor, size: tuple[int, int], generator: torch.Generator | None) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, h, w): a random crop per image with a generator, else the centre crop."""
    _, _, height, width = images.shape
    h, w = size
    if generator is None:
        top, left = (height - h) // 2, (width - w) // 2
        return images[:, :, top : top + h, left : left + w]
    tops = torch.randint(0, height - h + 1, (images.shape[0],), generator=generator).tolist()
    lefts = torch.randint(0, width - w + 1, (images.shape[0],), generator=generator).tolist()
    return torch.stack([img[:, t : t + h, l : l + w] for img, t, l in zip(images, tops, lefts)])


class CameraEncoder(nn.Module):
    """One camera: float (B, 3, H, W) in [0, 1] -> crop -> ResNet trunk -> keypoints -> (B, latent_dim)."""

    def __init__(self, config: VisionConfig, height: int, width: int) -> None:
        super().__init__()
        self.crop_size = (max(1, round(config.crop_ratio * height)), max(1, round(config.crop_ratio * width)))
        self.trunk = ResNetTrunk(config)
        if config.weights is not None:
            load_backbone(self.trunk, config.weights)
        with torch.no_grad():
            _, channels, fh, fw = self.trunk(torch.zeros(1, 3, *self.crop_size)).shape
        self.keypoints = nn.Conv2d(channels, config.keypoints, 1)
        self.pool = SpatialSoftmax(fh, fw)
        self.project = nn.Linear(2 * config.keypoints, config.latent_dim)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        images = crop(images, self.crop_size, generator)
        return self.project(self.pool(self.keypoints(self.trunk(images))))


# --- U-Net -------------------------------------------------------------------------------


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) float steps -> (B, dim) sin/cos features at geometric frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, dtype=torch.float32, device=t.device) / max(half - 1, 1))
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class Conv1dBlock(nn.Sequential):
    """Conv1d (same padding) -> GroupNorm -> Mish over (B, C, T)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, n_groups: int) -> None:
        super().__init__(nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
                         nn.GroupNorm(n_groups, out_channels), nn.Mish())


class FiLMResBlock(nn.Module):
    """Two conv blocks; the condition sets a per-channel scale and bias (FiLM) between them; residual input."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int, n_groups: int) -> None:
        super().__init__()
        self.block1 = Conv1dBlock(in_channels, out_channels, kernel_size, n_groups)
        self.block2 = Conv1dBlock(out_channels, out_channels, kernel_size, n_groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_channels))
        self.residual = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, T), cond (B, cond_dim) -> (B, C_out, T)."""
        scale, bias = rearrange(self.film(cond), "b (two c) -> two b c 1", two=2)
        out = self.block1(x) * scale + bias
        return self.block2(out) + self.residual(x)


class ConditionalUnet1D(nn.Module):
    """The denoiser: noisy actions (B, H, A), step (B,), global condition (B, G) -> (B, H, A)."""

    def __init__(self, action_dim: int, cond_dim: int, config: DiffusionConfig) -> None:
        super().__init__()
        k, g, e = config.kernel_size, config.n_groups, config.step_embed_dim
        self.step_embed_dim = e
        self.step_mlp = nn.Sequential(nn.Linear(e, 4 * e), nn.Mish(), nn.Linear(4 * e, e))
        cond = e + cond_dim
        dims = [action_dim, *config.down_dims]
        levels = list(zip(dims[:-1], dims[1:]))
        self.down = nn.ModuleList()
        for index, (d_in, d_out) in enumerate(levels):
            last = index == len(levels) - 1
            self.down.append(nn.ModuleList([
                FiLMResBlock(d_in, d_out, cond, k, g), FiLMResBlock(d_out, d_out, cond, k, g),
                nn.Identity() if last else nn.Conv1d(d_out, d_out, 3, stride=2, padding=1),
            ]))
        mid = dims[-1]
        self.mid = nn.ModuleList([FiLMResBlock(mid, mid, cond, k, g), FiLMResBlock(mid, mid, cond, k, g)])
        self.up = nn.ModuleList()
        for d_in, d_out in reversed(levels[1:]):  # one upsampling per downsampling
            self.up.append(nn.ModuleList([
                FiLMResBlock(2 * d_out, d_in, cond, k, g), FiLMResBlock(d_in, d_in, cond, k, g),
                nn.ConvTranspose1d(d_in, d_in, 4, stride=2, padding=1),
            ]))
        start = config.down_dims[0]
        self.final = nn.Sequential(Conv1dBlock(start, start, k, g), nn.Conv1d(start, action_dim, 1))

    def forward(self, sample: torch.Tensor, step: torch.Tensor, global_cond: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([self.step_mlp(sinusoidal_embedding(step, self.step_embed_dim)), global_cond], dim=-1)
        x = rearrange(sample, "b h a -> b a h")
        skips = []
        for res1, res2, downsample in self.down:
            x = res2(res1(x, cond), cond)
            skips.append(x)
            x = downsample(x)
        for res in self.mid:
            x = res(x, cond)
        for res1, res2, upsample in self.up:
            x = upsample(res2(res1(torch.cat([x, skips.pop()], dim=1), cond), cond))
        return rearrange(self.final(x), "b a h -> b h a")


# --- the policy --------------------------------------------------------------------------


class DiffusionPolicy(nn.Module):
    """Observation history -> action chunk, in physical units. `loss` trains it; `sample` acts.

    Observations are dicts of tensors with a leading (B, To) pair of axes: `images/<camera>` uint8 (B, To, H, W, 3)
    and `state/<name>` float (B, To, d). Keys are used in sorted order.
    """

    def __init__(self, observation_space: gym.spaces.Dict, action_dim: int, config: DiffusionConfig) -> None:
        super().__init__()
        self.config, self.observation_space, self.action_dim = config, observation_space, action_dim
        self.image_keys = sorted(k for k in observation_space.spaces if is_image_key(k))
        self.state_keys = sorted(k for k in observation_space.spaces if not is_image_key(k))
        if not self.image_keys and not self.state_keys:
            raise ValueError("diffusion policy: the observation space is empty")
        if config.action_targets == "absolute" and spaces.TCP_POSE not in self.state_keys:
            raise ValueError(f"diffusion policy: absolute action targets need {spaces.TCP_POSE} among the observations")
        self.cameras = nn.ModuleDict()
        for key in self.image_keys:
            height, width, channels = observation_space[key].shape
            if channels != 3:
                raise ValueError(f"observation {key}: expected (H, W, 3) images, got {observation_space[key].shape}")
            self.cameras[key.replace("/", "__")] = CameraEncoder(config.vision, height, width)
        dims = {key: int(math.prod(observation_space[key].shape)) for key in self.state_keys}
        self.normaliser = MinMaxNormaliser({**dims, ACTION: action_dim})
        self.feature_dim = sum(dims.values()) + config.vision.latent_dim * len(self.image_keys)
        self.unet = ConditionalUnet1D(action_dim, config.n_obs_steps * self.feature_dim, config)
        scheduler_args = {"num_train_timesteps": config.train_timesteps, "beta_schedule": "squaredcos_cap_v2",
                          "clip_sample": True, "prediction_type": "epsilon"}
        self.train_scheduler = DDPMScheduler(**scheduler_args)
        self.sampler = DDIMScheduler(**scheduler_args, set_alpha_to_one=True, steps_offset=0)

    @property
    def observation_keys(self) -> tuple[str, ...]:
        return (*self.image_keys, *self.state_keys)

    def encode(self, obs: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """Observation history -> global condition (B, To F); random crops only when `generator` is given."""
        batch, steps = next(iter(obs.values())).shape[:2]
        parts = []
        for key in self.image_keys:
            images = rearrange(obs[key], "b t h w c -> (b t) c h w").float() / 255.0
            parts.append(self.cameras[key.replace("/", "__")](images, generator))
        for key in self.state_keys:
            state = self.normaliser.normalise(key, obs[key].float().reshape(batch, steps, -1))
            parts.append(rearrange(state, "b t d -> (b t) d"))
        return rearrange(torch.cat(parts, dim=-1), "(b t) f -> b (t f)", b=batch)

    def loss(self, obs: dict[str, torch.Tensor], action: torch.Tensor, noise: torch.Tensor, time: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Denoising (ddpm) or velocity (flow) regression on a batch of windows; `action` (B, H, A) physical.

        The random draws come in: `noise` (B, H, A) and `time` (B,) in [0, 1) (the trainer draws them for the
        global batch, so data-parallel ranks reproduce a single process); `generator` draws the random crops.
        """
        cond = self.encode(obs, generator)
        target = self.normaliser.normalise(ACTION, action.float())
        if self.config.objective == "ddpm":
            steps = (time * self.config.train_timesteps).long().clamp(max=self.config.train_timesteps - 1)
            noisy = self.train_scheduler.add_noise(target, noise, steps)
            return F.mse_loss(self.unet(noisy, steps, cond), noise)
        # Rectified flow: x_s = (1 - s) noise + s action moves at constant velocity action - noise.
        s = time[:, None, None]
        noisy = (1 - s) * noise + s * target
        return F.mse_loss(self.unet(noisy, time * self.config.train_timesteps, cond), target - noise)

    def draw(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The random draws of `loss` for a batch: noise (B, H, A) and time (B,) uniform in [0, 1)."""
        noise = torch.randn(batch, self.config.horizon, self.action_dim, generator=generator)
        return noise, torch.rand(batch, generator=generator)

    @property
    def device(self) -> torch.device:
        """Where the weights are (the trainer's `device`; a loaded checkpoint acts on the CPU)."""
        return next(self.parameters()).device

    @torch.no_grad()
    def sample(self, obs: dict[str, torch.Tensor], *, generator: torch.Generator | None = None,
               noise: torch.Tensor | None = None, steps: int | None = None) -> torch.Tensor:
        """A whole chunk (B, H, A) in physical units. `noise` (B, H, A) fixes the initial sample (noise-space RL);
        drawn here, it comes from `generator` on the CPU whatever the device, so a seed means the same chunk."""
        cond = self.encode(obs)
        batch, steps = cond.shape[0], steps or self.config.sampler_steps
        shape = (batch, self.config.horizon, self.action_dim)
        x = (noise if noise is not None else torch.randn(shape, generator=generator)).to(cond.device)
        if self.config.objective == "ddpm":
            self.sampler.set_timesteps(steps)
            for t in self.sampler.timesteps:
                eps = self.unet(x, t.expand(batch).to(x.device), cond)
                x = self.sampler.step(eps, t, x, generator=generator).prev_sample
        else:
            for i in range(steps):
                s = torch.full((batch,), i / steps, device=x.device)
                x = x + self.unet(x, s * self.config.train_timesteps, cond) / steps
        return self.normaliser.unnormalise(ACTION, x.clamp(-1.0, 1.0))

    def tick_action(self, obs: dict[str, np.ndarray], entry: np.ndarray) -> np.ndarray:
        """A chunk entry as this tick's normalised action: the entry itself (delta), or the displacement from the
        TCP position in `obs` to the entry's target (absolute)."""
        if self.config.action_targets == "delta":
            return entry
        return targets_to_actions(entry, np.asarray(obs[spaces.TCP_POSE]), self.config.translation_scale)

    def predict_chunk(self, history: dict[str, np.ndarray], generator: torch.Generator | None = None,
                      noise: np.ndarray | None = None) -> np.ndarray:
        """One observation history (To, ...) per key -> the executable actions (H - To + 1, A) from the current step;
        `noise` (H, A) fixes the sampler's initial sample."""
        obs = {key: torch.as_tensor(np.asarray(history[key]))[None].to(self.device) for key in self.observation_keys}
        initial = None if noise is None else torch.as_tensor(np.asarray(noise, np.float32))[None]
        chunk = self.sample(obs, generator=generator, noise=initial)[0]
        return chunk[self.config.n_obs_steps - 1 :].cpu().numpy()

    # --- checkpoints -------------------------------------------------------------------

    def config_json(self) -> dict[str, Any]:
        """What config.json records: enough to rebuild the policy without data or an environment."""
        return {"kind": CHECKPOINT_KIND, "diffusion": json.loads(self.config.model_dump_json()),
                "observation_space": space_to_json(self.observation_space), "action_dim": self.action_dim}

    def save(self, directory: Path, *, extra_config: dict[str, Any] | None = None,
             training: dict[str, torch.Tensor] | None = None, training_meta: dict[str, Any] | None = None) -> Path:
        """model.safetensors holds these weights (with the normaliser); the trainer passes its resume state."""
        config = {**self.config_json(), **(extra_config or {})}
        return save_checkpoint(directory, weights=self.state_dict(), config=config,
                               training=training, training_meta=training_meta)

    @classmethod
    def load(cls, directory: Path) -> DiffusionPolicy:
        """Rebuild a policy from a checkpoint directory (evaluation mode)."""
        checkpoint = load_checkpoint(Path(directory))
        kind = checkpoint.config.get("kind")
        if kind != CHECKPOINT_KIND:
            raise ValueError(f"checkpoint {directory}: kind is {kind!r}, not {CHECKPOINT_KIND!r}")
        config = DiffusionConfig.model_validate(checkpoint.config["diffusion"])
        policy = cls(space_from_json(checkpoint.config["observation_space"]), checkpoint.config["action_dim"], config)
        policy.load_state_dict(checkpoint.weights)
        return policy.eval()


def scene_seed(first: Observation) -> int:
    """A seed from an episode's first observation (its arrays' bytes, keys in order): the same scene, the same seed."""
    digest = hashlib.blake2b(digest_size=8)
    for key in sorted(first):
        digest.update(np.ascontiguousarray(first[key]).tobytes())
    return int.from_bytes(digest.digest(), "little") >> 1


def chunked_policy(policy: DiffusionPolicy, *, asynchronous: bool = True, ensemble: float | None = None) -> ChunkedExecutor:
    """The policy as a per-tick controller (history, receding horizon; inference on a thread when `asynchronous`).

    The sampler's noise of an episode is seeded by its first observation (`scene_seed`): the policy acts the same
    way on the same scene, so two evaluations on the same episodes, such as a base alone and the base under a
    residual that has not moved yet, are paired (common random numbers) and differ by what differs between the
    policies, not by the sampler's luck. Scenes that differ draw different noise."""
    generator = torch.Generator()
    return ChunkedExecutor(lambda history: policy.predict_chunk(history, generator), policy.observation_keys,
                           n_obs_steps=policy.config.n_obs_steps, n_action_steps=policy.config.n_action_steps,
                           asynchronous=asynchronous, ensemble=ensemble, to_action=policy.tick_action,
                           on_episode_start=lambda first: generator.manual_seed(scene_seed(first)))


def actions_to_targets(actions: np.ndarray, tcp_pose: np.ndarray, scale: float) -> np.ndarray:
    """Normalised actions (N, A) and the TCP poses they were taken at (N, 7) -> targets: each step's translation
    becomes the position it aimed at (measured position + scale x action); rotation and gripper are kept."""
    targets = np.array(actions, np.float32)
    targets[:, :3] = tcp_pose[:, :3] + scale * targets[:, :3]
    return targets


def targets_to_actions(targets: np.ndarray, tcp_pose: np.ndarray, scale: float) -> np.ndarray:
    """The inverse at one tick: the normalised action that moves the TCP from `tcp_pose` towards `targets`."""
    actions = np.array(targets, np.float32)
    actions[..., :3] = np.clip((actions[..., :3] - tcp_pose[..., :3]) / scale, -1.0, 1.0)
    return actions
