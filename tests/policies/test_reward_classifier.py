"""Reward classifier: labels from episodes, split by episode, calibrated threshold, checkpoint, wrapper."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from tether.datasets.episode import EpisodeArrays
from tether.policies.networks import EncoderConfig
from tether.policies.reward_classifier import (
    ClassifierConfig,
    ClassifierReward,
    RewardClassifier,
    calibrate_threshold,
    label_frames,
    precision_recall_f1,
    train_reward_classifier,
)

SIZE = 24
CAMERA = "images/front"
SPACE = gym.spaces.Dict({CAMERA: gym.spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8),
                         "state/gripper": gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)})
CONFIG = ClassifierConfig(
    encoder=EncoderConfig(channels=(8, 8), kernels=(3, 3), strides=(2, 1), groups=4, latent_dim=16, aug_pad=2),
    hidden_dims=(32,), steps=150, batch_size=32, lr=1e-3,
)


def _image(rng: np.random.Generator, success: bool) -> np.ndarray:
    """Noise, with a bright block in the upper half once 'the cube is lifted'."""
    image = rng.integers(0, 80, (SIZE, SIZE, 3), dtype=np.uint8)
    row = rng.integers(2, 8) if success else rng.integers(14, 20)
    col = rng.integers(2, SIZE - 8)
    image[row : row + 5, col : col + 5] = 230
    return image


def _episode(rng: np.random.Generator, length: int, success: bool) -> EpisodeArrays:
    reward = np.zeros(length, np.float32)
    reward[-1] = float(success)
    return EpisodeArrays(
        obs={CAMERA: np.stack([_image(rng, False) for _ in range(length)]),
             "state/gripper": np.zeros((length, 1), np.float32)},
        final_obs={CAMERA: _image(rng, success), "state/gripper": np.zeros(1, np.float32)},
        action=np.zeros((length, 4), np.float32), policy_action=np.full((length, 4), np.nan, np.float32),
        reward=reward, terminated=reward > 0, truncated=reward == 0, intervened=np.zeros(length, bool),
    )


def test_labels_mark_the_frame_after_each_rewarded_step() -> None:
    rng = np.random.default_rng(0)
    frames = label_frames([_episode(rng, 4, True), _episode(rng, 3, False)], [CAMERA])
    assert frames.images[CAMERA].shape == (4 + 1 + 3 + 1, SIZE, SIZE, 3)
    assert frames.labels.tolist() == [False, False, False, False, True, False, False, False, False]
    assert frames.episode.tolist() == [0] * 5 + [1] * 4


def test_threshold_calibration_maximises_f1() -> None:
    probabilities = np.array([0.1, 0.2, 0.35, 0.4, 0.8, 0.9])
    labels = np.array([False, False, True, False, True, True])
    threshold = calibrate_threshold(probabilities, labels)
    # 0.35 keeps all 3 successes and one false alarm: F1 6/7 beats 0.8's (P 1, R 2/3) F1 0.8.
    assert threshold == 0.35
    assert precision_recall_f1(probabilities, labels, threshold) == pytest.approx((0.75, 1.0, 6 / 7))
    assert calibrate_threshold(np.array([0.2, 0.6, 0.9]), np.array([False, True, True])) == 0.6  # ties: higher


def test_classifier_learns_success_frames_and_round_trips(tmp_path) -> None:
    rng = np.random.default_rng(0)
    episodes = [_episode(rng, 10, success=i % 3 != 2) for i in range(30)]
    classifier, report = train_reward_classifier(episodes, SPACE, CONFIG, seed=0, progress=False)
    assert report.val_positives >= 2 and report.train_positives >= 10
    assert report.f1 >= 0.9 and report.precision >= 0.9, report
    assert 0 < report.threshold < 1 and float(classifier.threshold) == report.threshold
    assert classifier.probability({CAMERA: _image(rng, True)}) > classifier.probability({CAMERA: _image(rng, False)})

    classifier.save(tmp_path / "clf", {"f1": report.f1})
    loaded = RewardClassifier.load(tmp_path / "clf")
    frame = {CAMERA: _image(rng, True)}
    assert loaded.probability(frame) == classifier.probability(frame)
    assert float(loaded.threshold) == report.threshold


def test_training_needs_successes_and_episodes() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="training split has 0 success"):
        train_reward_classifier([_episode(rng, 5, False) for _ in range(4)], SPACE, CONFIG, seed=0, progress=False)
    with pytest.raises(ValueError, match="need at least 2 episodes"):
        train_reward_classifier([_episode(rng, 5, True)], SPACE, CONFIG, seed=0, progress=False)
    with pytest.raises(ValueError, match="no images/<camera> key"):
        RewardClassifier(gym.spaces.Dict({"state/gripper": SPACE["state/gripper"]}), CONFIG)


class ImageEnv(gym.Env):
    """Shows a success image from step 3 on; its own success signal fires at step 5."""

    observation_space = gym.spaces.Dict({CAMERA: SPACE[CAMERA]})
    action_space = gym.spaces.Box(-1, 1, (4,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return {CAMERA: _image(self.np_random, False)}, {}

    def step(self, action):
        self.t += 1
        success = self.t >= 5
        return {CAMERA: _image(self.np_random, self.t >= 3)}, float(success), success, False, {"success": success}


def test_wrapper_turns_the_probability_into_reward_and_episode_end() -> None:
    rng = np.random.default_rng(1)
    episodes = [_episode(rng, 10, success=i % 3 != 2) for i in range(30)]
    classifier, _ = train_reward_classifier(episodes, SPACE, CONFIG, seed=0, progress=False)
    env = ClassifierReward(ImageEnv(), classifier)
    env.reset(seed=0)
    rewards, infos = [], []
    for _ in range(3):
        _, reward, terminated, _, info = env.step(np.zeros(4, np.float32))
        rewards.append(reward)
        infos.append(info)
        if terminated:
            break
    assert rewards == [0.0, 0.0, 1.0]  # the classifier ends the episode at step 3, before the env's own success
    assert [i["env_success"] for i in infos] == [False, False, False] and infos[-1]["success"]
    with pytest.raises(ValueError, match=r"lacks the classifier's cameras \['images/front'\]"):
        ClassifierReward(_no_camera_env(), classifier)


def _no_camera_env() -> gym.Env:
    env = ImageEnv()
    env.observation_space = gym.spaces.Dict({"images/wrist": SPACE[CAMERA]})
    return env
