"""Pretrain the agent's camera trunk on twin renders, so it can be frozen and its features cached.

What is trained is exactly the pixel path of `tether.policies.networks.ImageEncoder` before its projection:
`ConvTrunk(EncoderConfig())` (4 convs, GroupNorm + ReLU; a 32x11x11 map for a 128x128 image) followed by a
`SpatialSoftmax` (per channel the expected (x, y) image position: 64 keypoint coordinates, with a learned
temperature). One trunk is shared by every camera, so one weights file serves the front and the wrist camera
alike (and any other camera of the same kind of scene).

Data recipe (the caller builds the twin env, `pick_cube` with obs_mode 'all', and hands it in with the
scripted operator):

    episode: reset (new cube pose, new randomisation draw) ──► 100 steps, every 4th observation kept
    action:  scripted operator (approach, grasp, lift, hold) + Gaussian noise on the motion
             ── with probability 5 % per step an excursion starts: 4-12 steps of one random action
                (random direction, random gripper command), after which the operator recovers
    labels:  privileged twin state of the same step: cube position, TCP position, gripper opening,
             cube minus TCP

Episodes run their full length whatever the task says (success does not end them), so frames of the cube
held and carried are common; excursions add poses and gripper states an expert would not visit (the arm far
from the cube, the gripper closed on nothing, the cube dropped). Domain randomisation is on with ranges wider
than the rig's (`WIDE_LOOKS`): camera position and field of view, the strength of the top light, and the
colours of the table, the floor, the cube and most of the arm.

What the twin cannot randomise, so these features have never seen it: textures and materials (every geom is a
flat colour), distractor or clutter objects (the scene is the arm, the table, the floor and the cube),
backgrounds beyond the floor's colour, camera orientation (only position and field of view move), the
headlight (light_scale moves only the top light) and the colour of the light, shadows and reflections (the
renderer turns them off), sensor noise, exposure and motion blur. Expect a gap on a real camera; the shifted
twin below measures only the part of it the twin can express.

Objectives, on two augmented views of each frame (random shift of +-4 px, brightness / contrast / per-channel
colour jitter), both cameras through the same trunk:
- supervised: one linear head per camera regresses the standardised labels from that camera's 64
  keypoints (each camera's features must carry what it can see on its own, and in a form a linear layer,
  like the agent's projection, reads);
- self-supervised (SimSiam, Chen & He 2021): a projector and a predictor on the keypoints; the prediction
  of one view is pulled towards the stop-gradient projection of the other, so the features also encode
  whatever makes two views of one frame agree, not only the four labels.
The heads are discarded; the file holds the trunk and the spatial softmax's temperature. `tether train encoder`
runs the recipe; the file tether ships is `tether.policies.networks.TWIN_ENCODER` (docs/encoder.md).

Validation (the numbers the file's metadata and report carry): on held-out episodes (other seeds), a
closed-form ridge probe from the frozen keypoints of all cameras (128 values for front + wrist) to the cube
and the TCP position, fitted on half of the episodes (its penalty chosen by cross-validation over whole
episodes) and scored on the other half (RMSE of the 3-D error in mm, and R^2 averaged over x, y, z). It is scored for the pretrained trunk and for the same trunk at its random
initialisation (same seed), on the randomised twin and on a shifted twin the caller builds (a look it was
not trained on); on the shifted twin also with the probe fitted on the randomised twin ('transfer').
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from pydantic import Field, field_validator
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm

from tether.config import RandomizationConfig, Range
from tether.policies.networks import (
    POOL_TEMPERATURE, ConvTrunk, EncoderConfig, SpatialSoftmax, StrictConfig, images_to_float, mlp, random_shift,
)
from tether.spaces import GRIPPER, IMAGES, STATE, TCP_POSE, is_image_key

if TYPE_CHECKING:
    from tether.policies.sac_loop import Expert

logger = logging.getLogger(__name__)

CUBE_POS = STATE + "cube_pos"
TARGETS = {"cube_pos": 3, "tcp_pos": 3, "gripper": 1, "cube_from_tcp": 3}
"""Regression labels, in this order along the label axis, and their sizes."""
PROBED = ("cube_pos", "tcp_pos")
"""Labels the validation probe predicts."""
PROBE_RIDGES = (0.01, 0.1, 1.0, 10.0, 100.0, 1_000.0, 10_000.0)
"""Ridge penalties (on standardised features) the validation probe chooses from."""
PROBE_FOLDS = 5
"""Folds of whole episodes that choose the probe's penalty."""
EPISODE_SEEDS = {"train": 0, "validation": 50_000, "shifted": 75_000}
"""Offset of each split's episode seeds from `seed * 100_000`: no episode is in two splits."""
WIDE_LOOKS = RandomizationConfig(
    enabled=True,
    camera_pos_jitter=0.02,
    camera_fovy_jitter_deg=5.0,
    light_scale=Range(low=0.3, high=1.7),
    color_jitter=0.3,
)
"""The rendering ranges of the data, about twice the twin_panda rig's (0.01 m, 2 deg, 0.6-1.4, 0.15). Physics is
left nominal and state noise off: the labels are exact."""


class EncoderPretrainConfig(StrictConfig):
    """Data recipe, objectives and optimisation of the trunk pretraining."""

    episodes: int = Field(120, ge=1, le=25_000)
    """Training episodes rendered from the twin."""
    val_episodes: int = Field(60, ge=4, le=25_000)
    """Held-out episodes for the probe, on the randomised twin and again on the shifted twin (half fit, half score)."""
    episode_steps: int = Field(100, ge=1)
    """Control steps per episode; success does not end an episode."""
    frame_stride: int = Field(4, ge=1)
    """Keep every this-many-th observation (neighbouring frames are near copies)."""
    action_noise: float = Field(0.2, ge=0)
    """Std of Gaussian noise added to the operator's motion (normalised action units)."""
    excursion_prob: float = Field(0.05, ge=0, le=1)
    """Chance per step that a random excursion starts."""
    excursion_steps: tuple[int, int] = (4, 12)
    """Inclusive range of an excursion's length (steps of one random action)."""
    randomization: RandomizationConfig = WIDE_LOOKS
    """Domain randomisation of the training and validation renders."""
    steps: int = Field(6_000, ge=1)
    """Adam steps."""
    batch_size: int = Field(16, ge=2)
    """Time steps per batch; each brings one image per camera, seen in two augmented views."""
    lr: float = Field(1e-3, gt=0)
    """Adam learning rate of trunk, temperature and heads, decayed to zero on a cosine."""
    head_hidden: int = Field(128, ge=1)
    """Hidden width of the SimSiam projector (the predictor has half)."""
    ssl_weight: float = Field(0.5, ge=0)
    """Weight of the SimSiam term beside the supervised one (0 turns it off)."""
    shift_pad: int = Field(4, ge=0)
    """Random-shift augmentation, in pixels (as the agent's DrQ augmentation)."""
    color_jitter: float = Field(0.2, ge=0, lt=1)
    """Brightness, contrast and per-channel gain each drawn in 1 +- this, per image and view."""

    @field_validator("excursion_steps")
    @classmethod
    def _steps_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= value[0] <= value[1]:
            raise ValueError(f"need 1 <= low <= high, got {list(value)}")
        return value


@dataclass(frozen=True)
class Frames:
    """Rendered time steps: images uint8 (N, K, H, W, 3) for K cameras, labels float32 (N, L) in `TARGETS` order,
    the episode of each step (N,)."""

    cameras: tuple[str, ...]
    images: np.ndarray
    labels: np.ndarray
    episode: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def frame_labels(obs: dict[str, np.ndarray]) -> np.ndarray:
    """The `TARGETS` of one observation (it needs `state/cube_pos`: the twin's pick_cube with task state)."""
    tcp, cube = obs[TCP_POSE][:3], obs[CUBE_POS]
    return np.concatenate([cube, tcp, obs[GRIPPER], cube - tcp]).astype(np.float32)


def collect_frames(
    env: gym.Env,
    operator: Expert,
    episodes: int,
    config: EncoderPretrainConfig,
    *,
    seed: int,
    randomization: RandomizationConfig | None = None,
    progress: bool = True,
) -> Frames:
    """Roll the recipe's episodes (env seeds `seed`, `seed + 1`, ...) and keep every `frame_stride`-th step.

    `randomization`, if given, is set on the twin first (`set_randomization`); None renders the env as it is.
    """
    cameras = tuple(sorted(k for k in env.observation_space.spaces if is_image_key(k)))
    if not cameras or CUBE_POS not in env.observation_space.spaces:
        raise ValueError(f"encoder pretraining needs camera images and {CUBE_POS}: the twin's pick_cube with "
                         f"obs_mode 'all' (got keys {sorted(env.observation_space.spaces)})")
    sizes = sorted({env.observation_space[key].shape for key in cameras})
    if len(sizes) > 1:
        raise ValueError(f"encoder pretraining needs one image size for all cameras, got {sizes}")
    if randomization is not None:
        env.unwrapped.set_randomization(randomization)
    rng = np.random.default_rng(seed)
    images, labels, owner = [], [], []
    for episode in tqdm(range(episodes), desc="twin frames", disable=not progress):
        obs, _ = env.reset(seed=seed + episode)
        operator.reset()
        excursion_left, excursion = 0, None
        for step in range(config.episode_steps):
            if step % config.frame_stride == 0:
                images.append(np.stack([obs[key] for key in cameras]))
                labels.append(frame_labels(obs))
                owner.append(episode)
            action = np.asarray(operator.act(env), dtype=np.float32)  # asked every step: its state stays current
            action[:3] += rng.normal(0.0, config.action_noise, 3)
            if excursion_left == 0 and rng.random() < config.excursion_prob:
                excursion_left = int(rng.integers(config.excursion_steps[0], config.excursion_steps[1] + 1))
                # Uniform gripper value: a quarter opens, a quarter closes, half keeps (|g| < 0.5).
                excursion = rng.uniform(-1.0, 1.0, action.shape).astype(np.float32)
            if excursion_left:
                action, excursion_left = excursion, excursion_left - 1
            obs, *_ = env.step(np.clip(action, -1.0, 1.0))
    return Frames(cameras, np.stack(images), np.stack(labels), np.asarray(owner))


# --- model ---------------------------------------------------------------------------------


class KeypointEncoder(nn.Module):
    """The frozen part of the agent's image encoder: float (B, 3, H, W) in [0, 1] -> keypoints (B, 2C)."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        self.trunk = ConvTrunk(EncoderConfig())
        with torch.no_grad():
            _, _, fh, fw = self.trunk(torch.zeros(1, 3, height, width)).shape
        self.pool = SpatialSoftmax(fh, fw)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(self.trunk(images))

    def tensors(self) -> dict[str, torch.Tensor]:
        """What the weights file holds: the trunk's state dict under its own names, plus the pool temperature."""
        weights = {name: t.detach().clone().contiguous() for name, t in self.trunk.state_dict().items()}
        return {**weights, POOL_TEMPERATURE: self.pool.log_temperature.detach().clone()}


class PretrainHeads(nn.Module):
    """Discarded after training: a linear label head per camera, and the SimSiam projector and predictor."""

    def __init__(self, keypoints: int, cameras: int, hidden: int) -> None:
        super().__init__()
        labels = sum(TARGETS.values())
        self.label_heads = nn.ModuleList(nn.Linear(keypoints, labels) for _ in range(cameras))
        self.projector = mlp(keypoints, (hidden,), keypoints, layer_norm=True)
        self.predictor = mlp(keypoints, (hidden // 2,), keypoints, layer_norm=True)


def color_jitter(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Per image (B, 3, H, W) in [0, 1]: contrast about its mean, brightness and channel gains, each 1 +- strength."""
    batch = images.shape[0]

    def factor(channels: int) -> torch.Tensor:
        return 1.0 + strength * (2.0 * torch.rand(batch, channels, 1, 1, generator=generator) - 1.0)

    contrast, scale = factor(1), factor(1) * factor(3)  # scale: brightness times channel gain
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    # ((x - mean) * contrast + mean) * scale, in one pass over the pixels.
    return torch.addcmul(mean * (1.0 - contrast) * scale, images, contrast * scale).clamp_(0.0, 1.0)


def pretrain_losses(
    encoder: KeypointEncoder,
    heads: PretrainHeads,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: EncoderPretrainConfig,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """Supervised and SimSiam losses of a batch: images uint8 (B, K, H, W, 3), standardised labels (B, L)."""
    cameras = images.shape[1]
    flat = images_to_float(rearrange(images, "b k h w c -> (b k) h w c"))
    supervised, projections, predictions = [], [], []
    for _ in range(2):  # two augmented views
        view = color_jitter(random_shift(flat, config.shift_pad, generator), config.color_jitter, generator)
        keypoints = encoder(view)  # (B K, 2C)
        per_camera = rearrange(keypoints, "(b k) f -> k b f", k=cameras)
        supervised += [F.mse_loss(head(kp), labels) for head, kp in zip(heads.label_heads, per_camera)]
        projection = heads.projector(keypoints)
        projections.append(projection)
        predictions.append(heads.predictor(projection))
    # SimSiam: each view's prediction towards the other's projection, which gets no gradient.
    ssl = -0.5 * (F.cosine_similarity(predictions[0], projections[1].detach(), dim=-1).mean()
                  + F.cosine_similarity(predictions[1], projections[0].detach(), dim=-1).mean())
    return {"supervised": torch.stack(supervised).mean(), "ssl": ssl}


def new_encoder(height: int, width: int, seed: int) -> KeypointEncoder:
    """The trunk at its initialisation for `seed` (the random-init baseline is this, untrained)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return KeypointEncoder(height, width)


def pretrain(
    encoder: KeypointEncoder, frames: Frames, config: EncoderPretrainConfig, *, seed: int, progress: bool = True
) -> list[dict[str, float]]:
    """Train `encoder` in place on `frames`; returns the losses of every step."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        heads = PretrainHeads(2 * EncoderConfig().channels[-1], len(frames.cameras), config.head_hidden)
    mean = frames.labels.mean(axis=0)
    std = frames.labels.std(axis=0).clip(min=1e-3)  # a constant label (e.g. a one-frame debug set) stays finite
    labels = torch.as_tensor((frames.labels - mean) / std)
    parameters = [*encoder.parameters(), *heads.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
    encoder.train()
    history = []
    for _ in tqdm(range(config.steps), desc="encoder", disable=not progress):
        index = rng.integers(0, len(frames), config.batch_size)
        losses = pretrain_losses(encoder, heads, torch.as_tensor(frames.images[index]), labels[index], config,
                                 generator)
        loss = losses["supervised"] + config.ssl_weight * losses["ssl"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        history.append({name: value.item() for name, value in losses.items()})
    encoder.eval()
    return history


# --- validation ----------------------------------------------------------------------------


@torch.no_grad()
def keypoints_of(encoder: KeypointEncoder, frames: Frames, batch: int = 256) -> np.ndarray:
    """Frozen features of every time step: the keypoints of all cameras side by side, float64 (N, K 2C)."""
    encoder.eval()
    out = []
    for start in range(0, len(frames), batch):
        images = torch.as_tensor(frames.images[start : start + batch])
        keypoints = encoder(images_to_float(rearrange(images, "b k h w c -> (b k) h w c")))
        out.append(rearrange(keypoints, "(b k) f -> b (k f)", k=len(frames.cameras)).double().numpy())
    return np.concatenate(out)


@dataclass(frozen=True)
class RidgeProbe:
    """A linear map from standardised features to labels, fitted in closed form."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # (F + 1, L), the last row the intercept

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, ridge: float) -> RidgeProbe:
        mean, scale = features.mean(axis=0), features.std(axis=0).clip(min=1e-8)
        x = np.hstack([(features - mean) / scale, np.ones((len(features), 1))])
        penalty = ridge * np.eye(x.shape[1])
        penalty[-1, -1] = 0.0  # the intercept is not shrunk
        return cls(mean, scale, np.linalg.solve(x.T @ x + penalty, x.T @ labels))

    @classmethod
    def fit_cv(cls, features: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> RidgeProbe:
        """`fit` with the penalty of `PROBE_RIDGES` that predicts held-out groups (episodes) best, `PROBE_FOLDS`-fold.

        Frames of one episode share a cube pose and a randomisation draw: scored on its own frames, a probe
        would be rewarded for memorising episodes."""
        fold = np.searchsorted(np.unique(groups), groups) % PROBE_FOLDS
        errors = [
            sum(np.sum((cls.fit(features[fold != k], labels[fold != k], ridge).predict(features[fold == k])
                        - labels[fold == k]) ** 2) for k in range(PROBE_FOLDS))
            for ridge in PROBE_RIDGES
        ]
        return cls.fit(features, labels, PROBE_RIDGES[int(np.argmin(errors))])

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.hstack([(features - self.mean) / self.scale, np.ones((len(features), 1))]) @ self.weights


def probe_labels(frames: Frames) -> np.ndarray:
    """The `PROBED` labels side by side (N, 3 len(PROBED))."""
    offsets = np.cumsum([0, *TARGETS.values()])
    columns = {name: frames.labels[:, offsets[i] : offsets[i + 1]] for i, name in enumerate(TARGETS)}
    return np.hstack([columns[name] for name in PROBED]).astype(np.float64)


def probe_scores(predicted: np.ndarray, true: np.ndarray) -> dict[str, dict[str, float]]:
    """Per probed label: RMSE of the 3-D position error (mm) and R^2 averaged over x, y, z."""
    scores = {}
    for i, name in enumerate(PROBED):
        p, t = predicted[:, 3 * i : 3 * i + 3], true[:, 3 * i : 3 * i + 3]
        rmse_mm = 1000.0 * float(np.sqrt(np.mean(np.sum((p - t) ** 2, axis=1))))
        r2 = 1.0 - np.sum((p - t) ** 2, axis=0) / np.sum((t - t.mean(axis=0)) ** 2, axis=0)
        scores[name] = {"rmse_mm": round(rmse_mm, 2), "r2": round(float(np.mean(r2)), 4)}
    return scores


def validate(encoder: KeypointEncoder, validation: Frames, shifted: Frames) -> dict[str, dict[str, dict[str, float]]]:
    """Probe scores of a frozen encoder: even episodes fit the probe, odd ones are scored (see the module doc)."""
    report, probes = {}, {}
    for name, frames in (("validation", validation), ("shifted", shifted)):
        features, labels = keypoints_of(encoder, frames), probe_labels(frames)
        fit, score = frames.episode % 2 == 0, frames.episode % 2 == 1
        probes[name] = RidgeProbe.fit_cv(features[fit], labels[fit], frames.episode[fit])
        report[name] = probe_scores(probes[name].predict(features[score]), labels[score])
        if name == "shifted":
            report["shifted_transfer"] = probe_scores(probes["validation"].predict(features[score]), labels[score])
    return report


# --- the whole recipe ----------------------------------------------------------------------


def run_pretraining(
    train: Frames,
    validation: Frames,
    shifted: Frames,
    config: EncoderPretrainConfig,
    *,
    seed: int,
    progress: bool = True,
) -> tuple[KeypointEncoder, dict[str, Any]]:
    """Pretrain on `train`, probe the result and its random initialisation; returns the encoder and its report."""
    height, width = train.images.shape[2:4]
    encoder = new_encoder(height, width, seed)
    random_init = copy.deepcopy(encoder)
    started = time.monotonic()
    history = pretrain(encoder, train, config, seed=seed, progress=progress)
    last = history[-min(100, len(history)) :]
    logger.info("encoder: %d steps on %d time steps, supervised loss %.3f -> %.3f", config.steps, len(train),
                history[0]["supervised"], np.mean([h["supervised"] for h in last]))
    report = {
        "seed": seed,
        "trunk": trunk_description(height, width),
        "data": {
            "cameras": [key.removeprefix(IMAGES) for key in train.cameras],
            "train_episodes": int(len(np.unique(train.episode))),
            "train_steps_kept": len(train),
            "train_images": len(train) * len(train.cameras),
            "validation_steps_kept": len(validation),
            "shifted_steps_kept": len(shifted),
        },
        "training": {
            "steps": config.steps,
            "seconds": round(time.monotonic() - started, 1),
            "first_supervised_loss": round(history[0]["supervised"], 4),
            "final_supervised_loss": round(float(np.mean([h["supervised"] for h in last])), 4),
            "final_ssl_loss": round(float(np.mean([h["ssl"] for h in last])), 4),
        },
        "probe": {
            "pretrained": validate(encoder, validation, shifted),
            "random_init": validate(random_init, validation, shifted),
        },
        "config": json.loads(config.model_dump_json()),
    }
    return encoder, report


def trunk_description(height: int, width: int) -> dict[str, Any]:
    """The architecture a weights file fits: the trunk's config, its pooling and the image size it was trained at."""
    trunk = EncoderConfig()
    return {"channels": list(trunk.channels), "kernels": list(trunk.kernels), "strides": list(trunk.strides),
            "groups": trunk.groups, "pooling": trunk.pooling, "image_size": [height, width]}


def save_encoder(encoder: KeypointEncoder, path: Path, report: dict[str, Any]) -> None:
    """The weights as safetensors; metadata (strings) records the trunk, the seed, the data and the probe numbers.

    Run-time figures (seconds) stay out of the file, so one seed writes the same bytes every time.
    """
    metadata = {
        "format": "tether.keypoint_encoder",
        "trunk": json.dumps(report["trunk"]),
        "image_size": json.dumps(report["trunk"]["image_size"]),
        "seed": str(report["seed"]),
        "data": json.dumps(report["data"]),
        "validation": json.dumps(report["probe"]),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(encoder.tensors(), str(path), metadata=metadata)
