"""Looking at an episode: a PNG contact sheet, or a rerun recording of every frame and signal."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np

from tether.datasets.store import STEP_ARRAYS, EpisodeStore, StoreError
from tether.spaces import is_image_key

GAP = 2  # pixels between tiles


def contact_sheet(store: EpisodeStore, episode: int, out: Path, frames: int = 8) -> np.ndarray:
    """One row per camera of `frames` evenly spaced frames (the final observation last); writes a PNG
    to `out` and returns the sheet (H, W, 3)."""
    cameras = [key for key in store.spec.obs if is_image_key(key)]
    if not cameras:
        raise StoreError(f"{store.path}: no cameras to draw; view it as a .rrd recording instead")
    if frames < 1:
        raise StoreError(f"frames: must be at least 1, got {frames}")
    data = store.episode(episode, keys=cameras)
    picks = np.unique(np.linspace(0, len(data), min(frames, len(data) + 1)).round().astype(int))
    rows = []
    for key in cameras:
        tiles = [data.obs[key][i] if i < len(data) else data.final_obs[key] for i in picks]
        height = tiles[0].shape[0]
        gap = np.full((height, GAP, 3), 255, np.uint8)
        rows.append(np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1))
    width = max(row.shape[1] for row in rows)
    padded = [np.pad(row, ((0, GAP), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    sheet = np.concatenate(padded)[:-GAP]
    out.write_bytes(imagecodecs.png_encode(sheet))
    return sheet


def rerun_recording(store: EpisodeStore, episode: int, out: Path) -> None:
    """Every frame, state vector, action and flag of the episode on a `step` timeline, saved as .rrd."""
    import rerun as rr

    data = store.episode(episode)
    recording = rr.RecordingStream(f"tether/{store.path.name}/episode{episode}")
    recording.save(out)
    for t in range(len(data)):
        recording.set_time("step", sequence=t)
        for key, value in data.obs.items():
            recording.log(key, rr.Image(value[t]) if is_image_key(key) else rr.Scalars(value[t].astype(np.float64)))
        for name in STEP_ARRAYS:
            value = np.atleast_1d(getattr(data, name)[t]).astype(np.float64)
            if np.isfinite(value).all():
                recording.log(name, rr.Scalars(value))
    recording.flush()
