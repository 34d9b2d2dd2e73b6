"""A binary success classifier on camera images, and the wrapper that turns it into a reward.

On a real robot nothing reports success; HIL-SERL trains a classifier on frames labelled from
demonstrations and ends episodes with it. Labels come from an episode store: the observation
after a rewarded step shows success (for the twin's sparse tasks, the final observation of a
successful episode); every other observation is a negative. Positives are rare, so batches are
balanced and augmented (random shift). The validation split is by episode, so frames of one
episode never sit on both sides; the threshold is the one that maximises F1 on validation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from tqdm import tqdm

from tether.datasets.episode import EpisodeArrays
from tether.policies.checkpoint import load_checkpoint, save_checkpoint
from tether.policies.networks import EncoderConfig, ImageEncoder, StrictConfig, images_to_float, mlp, random_shift
from tether.policies.sac import space_from_json, space_to_json
from tether.spaces import is_image_key
from tether.types import Observation

logger = logging.getLogger(__name__)

CHECKPOINT_KIND = "reward_classifier"


class ClassifierConfig(StrictConfig):
    """Training settings of the success classifier."""

    encoder: EncoderConfig = EncoderConfig()
    """Per-camera encoder, the same family as the agent's (a pretrained backbone file may be given)."""
    hidden_dims: tuple[int, ...] = (256,)
    """Hidden widths of the head over the concatenated camera features."""
    steps: int = Field(2_000, ge=1)
    """Gradient steps."""
    batch_size: int = Field(64, ge=2)
    """Frames per step, half successes and half not."""
    lr: float = Field(3e-4, gt=0)
    """Adam learning rate."""
    val_fraction: float = Field(0.2, gt=0, lt=1)
    """Share of episodes held out for validation and threshold calibration."""


@dataclass(frozen=True)
class LabelledFrames:
    """Images per camera (N, H, W, 3), success labels (N,) and the episode of each frame (N,)."""

    images: dict[str, np.ndarray]
    labels: np.ndarray
    episode: np.ndarray


def label_frames(episodes: Sequence[EpisodeArrays], cameras: Sequence[str]) -> LabelledFrames:
    """Every observation of every episode plus its final one; positive iff the step into it was rewarded."""
    images: dict[str, list[np.ndarray]] = {key: [] for key in cameras}
    labels, owner = [], []
    for index, episode in enumerate(episodes):
        for key in cameras:
            images[key].append(np.concatenate([episode.obs[key], episode.final_obs[key][None]]))
        rewarded = np.asarray(episode.reward) > 0
        labels.append(np.concatenate([[False], rewarded]))  # frame t+1 follows step t
        owner.append(np.full(len(episode) + 1, index))
    return LabelledFrames(
        images={key: np.concatenate(value) for key, value in images.items()},
        labels=np.concatenate(labels), episode=np.concatenate(owner),
    )


class RewardClassifier(nn.Module):
    """p(success | images): one encoder per camera, concatenated, an MLP to one logit."""

    def __init__(self, observation_space: gym.spaces.Dict, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.cameras = sorted(k for k in observation_space.spaces if is_image_key(k))
        if not self.cameras:
            raise ValueError("reward classifier: the observation has no images/<camera> key")
        self.observation_space = gym.spaces.Dict({k: observation_space[k] for k in self.cameras})
        self.encoders = nn.ModuleDict({
            key.replace("/", "__"): ImageEncoder(config.encoder, *observation_space[key].shape[:2])
            for key in self.cameras
        })
        self.head = mlp(config.encoder.latent_dim * len(self.cameras), config.hidden_dims, 1, layer_norm=True)
        self.register_buffer("threshold", torch.tensor(0.5))

    def forward(self, images: dict[str, torch.Tensor]) -> torch.Tensor:
        """Float images (B, 3, H, W) per camera -> logits (B,)."""
        features = [self.encoders[key.replace("/", "__")](images[key]) for key in self.cameras]
        return self.head(torch.cat(features, dim=-1)).squeeze(-1)

    @torch.no_grad()
    def probability(self, obs: Observation) -> float:
        """Success probability of one observation (no batch axis)."""
        images = {key: images_to_float(torch.as_tensor(obs[key])[None]) for key in self.cameras}
        return float(torch.sigmoid(self(images))[0])

    def save(self, directory: Path, report: dict[str, Any]) -> Path:
        config = {
            "kind": CHECKPOINT_KIND, "classifier": json.loads(self.config.model_dump_json()),
            "observation_space": space_to_json(self.observation_space), "report": report,
        }
        return save_checkpoint(directory, weights=self.state_dict(), config=config)

    @classmethod
    def load(cls, directory: Path) -> RewardClassifier:
        checkpoint = load_checkpoint(directory)
        if checkpoint.config.get("kind") != CHECKPOINT_KIND:
            raise ValueError(f"checkpoint {directory}: kind is {checkpoint.config.get('kind')!r}, not {CHECKPOINT_KIND!r}")
        config = ClassifierConfig.model_validate(checkpoint.config["classifier"])
        classifier = cls(space_from_json(checkpoint.config["observation_space"]), config)
        classifier.load_state_dict(checkpoint.weights)
        return classifier.eval()


@dataclass
class ClassifierReport:
    """Validation quality at the calibrated threshold."""

    threshold: float
    precision: float
    recall: float
    f1: float
    val_positives: int
    val_negatives: int
    train_positives: int
    train_negatives: int


def precision_recall_f1(probabilities: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float, float]:
    predicted = probabilities >= threshold
    true_positive = float(np.sum(predicted & labels))
    precision = true_positive / max(float(predicted.sum()), 1.0)
    recall = true_positive / max(float(labels.sum()), 1.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


def calibrate_threshold(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The threshold (among the predicted probabilities) with the best F1; ties go to the higher, safer one."""
    candidates = np.unique(np.concatenate([probabilities, [0.5]]))
    scores = [precision_recall_f1(probabilities, labels, t)[2] for t in candidates]
    best = max(scores)
    return float(max(t for t, s in zip(candidates, scores) if s == best))


def _split_by_episode(frames: LabelledFrames, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices of train and validation frames; each side gets whole episodes and, if possible, a success."""
    episodes = np.unique(frames.episode)
    if len(episodes) < 2:
        raise ValueError(f"reward classifier: need at least 2 episodes for a validation split, got {len(episodes)}")
    successful = np.unique(frames.episode[frames.labels])
    others = np.setdiff1d(episodes, successful)
    val = []
    for group in (rng.permutation(successful), rng.permutation(others)):
        count = int(round(len(group) * val_fraction))
        val.extend(group[: max(count, 1 if len(group) >= 2 else 0)])
    in_val = np.isin(frames.episode, val)
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)


def train_reward_classifier(
    episodes: Sequence[EpisodeArrays],
    observation_space: gym.spaces.Dict,
    config: ClassifierConfig,
    *,
    seed: int,
    progress: bool = True,
) -> tuple[RewardClassifier, ClassifierReport]:
    """Train on labelled frames of `episodes`; calibrate the threshold on held-out episodes."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = RewardClassifier(observation_space, config)
    frames = label_frames(episodes, classifier.cameras)
    train, val = _split_by_episode(frames, config.val_fraction, rng)
    positives, negatives = train[frames.labels[train]], train[~frames.labels[train]]
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError(f"reward classifier: training split has {len(positives)} success and "
                         f"{len(negatives)} other frames; it needs both")
    optimizer = torch.optim.Adam([p for p in classifier.parameters() if p.requires_grad], lr=config.lr)
    half = config.batch_size // 2

    def images_at(index: np.ndarray, augment: bool) -> dict[str, torch.Tensor]:
        out = {}
        for key in classifier.cameras:
            images = images_to_float(torch.as_tensor(frames.images[key][index]))
            out[key] = random_shift(images, config.encoder.aug_pad, generator) if augment else images
        return out

    classifier.train()
    for _ in tqdm(range(config.steps), desc="reward classifier", disable=not progress):
        index = np.concatenate([rng.choice(positives, half), rng.choice(negatives, config.batch_size - half)])
        labels = torch.as_tensor(frames.labels[index], dtype=torch.float32)
        loss = F.binary_cross_entropy_with_logits(classifier(images_at(index, augment=True)), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    classifier.eval()
    with torch.no_grad():
        probabilities = np.concatenate([
            torch.sigmoid(classifier(images_at(chunk, augment=False))).numpy()
            for chunk in np.array_split(val, max(1, len(val) // 256))
        ])
    val_labels = frames.labels[val]
    threshold = calibrate_threshold(probabilities, val_labels)
    classifier.threshold.fill_(threshold)
    precision, recall, f1 = precision_recall_f1(probabilities, val_labels, threshold)
    report = ClassifierReport(
        threshold=threshold, precision=precision, recall=recall, f1=f1,
        val_positives=int(val_labels.sum()), val_negatives=int((~val_labels).sum()),
        train_positives=len(positives), train_negatives=len(negatives),
    )
    logger.info("reward classifier: %s", report)
    return classifier, report


class ClassifierReward(gym.Wrapper):
    """Replaces the env's reward and success with the classifier's: reward 1 and episode end when
    p(success | next obs) >= the calibrated threshold. The env's own success stays in info['env_success'].

    Other terminations of the env (e.g. a failure) still end the episode.
    """

    def __init__(self, env: gym.Env, classifier: RewardClassifier) -> None:
        super().__init__(env)
        missing = sorted(set(classifier.cameras) - set(env.observation_space.spaces))
        if missing:
            raise ValueError(f"ClassifierReward: the env observation lacks the classifier's cameras {missing}")
        self.classifier = classifier

    def step(self, action: np.ndarray) -> tuple[Observation, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, _, terminated, truncated, info = self.env.step(action)
        probability = self.classifier.probability(obs)
        success = probability >= float(self.classifier.threshold)
        env_success = bool(info.get("success", False))
        info = {**info, "env_success": env_success, "success": success, "success_probability": probability}
        failed = terminated and not env_success
        return obs, float(success), bool(success or failed), truncated, info
