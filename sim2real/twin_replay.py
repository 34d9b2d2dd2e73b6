"""Offline evaluation on twin renders of logged real episodes.

Each logged step is replayed through the mirror twin: the arm goes to the logged joint angles
and finger opening, bodies with markers go where the logged detect-camera image shows them, and
the twin renders the policy's cameras. The policy acts on that observation (state keys the store
has are taken from it; task state it lacks comes from the mirror), and its action is compared
with the logged one. The twin also re-scores each episode, so a store recorded where no success
detector ran still gets a success judgement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from tether import spaces
from tether.actions import gripper_part
from tether.datasets.store import EpisodeStore
from tether.sim2real.mirror import MirrorTwin
from tether.types import Observation

MOVING = 1e-3  # action norm below which a translation has no direction worth comparing


@dataclass(frozen=True)
class EpisodeAgreement:
    episode: int
    steps: int
    logged_success: bool | None
    twin_success: bool
    action_mae: float
    """Mean absolute difference per action dimension (action units)."""
    direction_cosine: float | None
    """Mean cosine between policy and logged translations, over steps where both move; None if none did."""
    gripper_agreement: float | None
    """Fraction of steps whose gripper commands (open / close / keep) agree; None for actions without a gripper."""


def replay_episode(
    store: EpisodeStore, index: int, mirror: MirrorTwin, act: Callable[[Observation], np.ndarray],
    keys: tuple[str, ...],
) -> EpisodeAgreement:
    """Replay one logged episode through the mirror and compare `act`'s actions with the logged ones."""
    arrays = store.episode(index)
    if spaces.JOINTS not in arrays.obs:
        raise ValueError(f"{store.path}: no {spaces.JOINTS}; the mirror follows logged joint angles")
    detect_key = spaces.image_key(mirror.detect_camera) if mirror.detect_camera else None
    images_needed = any(spaces.is_image_key(k) for k in keys)
    missing = [k for k in keys if spaces.is_image_key(k) and k[len(spaces.IMAGES):] not in mirror.camera_names]
    if missing:
        raise ValueError(f"the policy observes {missing}, which the mirror cannot render (no calibrated pose)")
    proposed, twin_success = [], False
    for t in range(len(arrays.action)):
        gripper = arrays.obs[spaces.GRIPPER][t][0] if spaces.GRIPPER in arrays.obs else None
        mirror.follow(arrays.obs[spaces.JOINTS][t], gripper)
        if detect_key in arrays.obs:
            mirror.place_from_image(arrays.obs[detect_key][t])
        renders = mirror.render() if images_needed else {}
        task_state = mirror.task_state()
        obs: Observation = {}
        for key in keys:
            if spaces.is_image_key(key):
                obs[key] = renders[key[len(spaces.IMAGES):]]
            elif key in arrays.obs:
                obs[key] = arrays.obs[key][t]
            else:
                obs[key] = task_state[key[len(spaces.STATE):]]
        proposed.append(np.asarray(act(obs), np.float32))
        twin_success = twin_success or mirror.score().success
    return agreement(index, np.stack(proposed), arrays.action, store.episodes[index].success, twin_success)


def agreement(
    index: int, proposed: np.ndarray, logged: np.ndarray, logged_success: bool | None, twin_success: bool
) -> EpisodeAgreement:
    """How a policy's actions (T, A) agree with the logged ones (T, A), in any action layout (`tether.actions`)."""
    p, q = proposed[:, :3], logged[:, :3]
    norms = np.linalg.norm(p, axis=1) * np.linalg.norm(q, axis=1)
    moving = norms > MOVING**2
    cosine = float(np.mean(np.sum(p * q, axis=1)[moving] / norms[moving])) if moving.any() else None
    grippers = [(gripper_part(a), gripper_part(b)) for a, b in zip(proposed, logged)]
    grip = [spaces.gripper_command(a) == spaces.gripper_command(b) for a, b in grippers if a is not None]
    return EpisodeAgreement(
        episode=index, steps=len(logged), logged_success=logged_success, twin_success=twin_success,
        action_mae=float(np.abs(proposed - logged).mean()), direction_cosine=cosine,
        gripper_agreement=float(np.mean(grip)) if grip else None,
    )


def summarise(episodes: list[EpisodeAgreement]) -> dict:
    """Per-episode figures and their means; success agreement counts episodes with a logged outcome."""
    judged = [e for e in episodes if e.logged_success is not None]
    cosines = [e.direction_cosine for e in episodes if e.direction_cosine is not None]
    agreements = [e.gripper_agreement for e in episodes]
    return {
        "episodes": len(episodes),
        "action_mae": float(np.mean([e.action_mae for e in episodes])),
        "direction_cosine": float(np.mean(cosines)) if cosines else None,
        "gripper_agreement": None if None in agreements else float(np.mean(agreements)),
        "twin_success_rate": float(np.mean([e.twin_success for e in episodes])),
        "logged_success_rate": float(np.mean([e.logged_success for e in judged])) if judged else None,
        "success_agreement": float(np.mean([e.twin_success == e.logged_success for e in judged])) if judged else None,
        "per_episode": [asdict(e) for e in episodes],
    }
