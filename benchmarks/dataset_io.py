"""Episode store I/O against plain HDF5 (h5py) writing and reading the same data in the same run.

Figures: write throughput (frames/s, and x real time at 30 fps) for three 128x128 cameras and
for two 640x480 cameras, each with proprioceptive state, streamed step by step as a recorder
does; bytes per frame on disk; RL transition sampling (batch 256, two 128x128 cameras) and
diffusion window sampling (n_obs_steps 2, horizon 16, batch 64) in samples/s. The HDF5 baseline
has one resizable dataset per key, chunks of one frame for images, no compression, appended
with resize + write per step, and samples with h5py fancy indexing from the file.

Store writes run in child processes, alternating round by round with HDF5 and, given `--baseline
REV`, with the store code of that git revision (tether.datasets as it was there), so before/after
ratios come from one run on the same loaded machine; each figure is the median over rounds.

    .venv/bin/python -m benchmarks.dataset_io [--episodes 4 --steps 100 --rounds 3 --baseline REV]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np

import tether.datasets.store
from benchmarks.baseline import extract_package, run_module
from benchmarks.report import markdown_table, write_results
from tether.datasets.replay_io import replay_from_store
from tether.datasets.sampler import SequenceSampler, TransitionSampler
from tether.datasets.store import EpisodeStore, EpisodeWriter

REAL_TIME_FPS = 30.0
STATE = {"state/tcp_pose": 7, "state/tcp_vel": 6, "state/gripper": 1, "state/joints": 7}
WRITE_SETUPS = [  # name, cameras, height, width, share of --episodes recorded
    ("3 cameras 128x128 + state", 3, 128, 128, 1.0),
    ("2 cameras 640x480 + state", 2, 480, 640, 0.5),
]


def camera_frames(n: int, height: int, width: int, seed: int) -> np.ndarray:
    """Camera-like frames: smooth shading, a moving object and sensor noise (not random bytes,
    which no codec compresses, nor flat colour, which every codec does)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width * 180 + 40, yy / height * 120 + 60, (xx + yy) / (width + height) * 90 + 80], -1)
    frames = np.empty((n, height, width, 3), np.uint8)
    for t in range(n):
        cx, cy = width * (0.3 + 0.4 * np.sin(t / 15)), height * (0.5 + 0.2 * np.cos(t / 11))
        blob = ((xx - cx) ** 2 + (yy - cy) ** 2 < (0.08 * width) ** 2)[..., None] * np.array([120.0, -40, -60])
        frames[t] = np.clip(base + blob + rng.normal(0, 2.0, base.shape), 0, 255).astype(np.uint8)
    return frames


def make_space(cameras: int, height: int, width: int) -> gym.spaces.Dict:
    spaces = {f"images/cam{i}": gym.spaces.Box(0, 255, (height, width, 3), np.uint8) for i in range(cameras)}
    spaces |= {key: gym.spaces.Box(-np.inf, np.inf, (d,), np.float32) for key, d in STATE.items()}
    return gym.spaces.Dict(spaces)


def make_steps(space: gym.spaces.Dict, steps: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    data = {}
    for i, (key, box) in enumerate(space.spaces.items()):
        if box.dtype == np.uint8:
            data[key] = camera_frames(steps + 1, box.shape[0], box.shape[1], seed=i)
        else:
            data[key] = rng.standard_normal((steps + 1, *box.shape)).astype(np.float32)
    data["action"] = rng.uniform(-1, 1, (steps, 4)).astype(np.float32)
    return data


def write_store(path: Path, space: gym.spaces.Dict, data: dict[str, np.ndarray], episodes: int, steps: int,
                parts: dict[str, float] | None = None) -> float:
    """Seconds to record `episodes` x `steps` steps one add_step at a time (store created and closed included);
    `parts` receives where they went: create, the commits (end_episode) and close, in seconds."""
    parts = {} if parts is None else parts
    start = time.perf_counter()
    writer = EpisodeWriter.create(path, space, 4, fps=REAL_TIME_FPS)
    parts["create"], parts["commit"] = time.perf_counter() - start, 0.0
    with writer:
        for _ in range(episodes):
            writer.begin_episode(source="teleop")
            for t in range(steps):
                writer.add_step({key: data[key][t] for key in space.spaces}, data["action"][t], truncated=t == steps - 1)
            committing = time.perf_counter()
            writer.end_episode(success=True, final_obs={key: data[key][steps] for key in space.spaces})
            parts["commit"] += time.perf_counter() - committing
        closing = time.perf_counter()
    parts["close"] = time.perf_counter() - closing
    return time.perf_counter() - start


def write_hdf5(path: Path, space: gym.spaces.Dict, data: dict[str, np.ndarray], episodes: int, steps: int) -> float:
    """The same recording into plain HDF5: resizable datasets, appended per step."""
    start = time.perf_counter()
    with h5py.File(path, "w") as f:
        datasets = {}
        for key, box in space.spaces.items():
            chunks = (1, *box.shape) if box.dtype == np.uint8 else (1024, *box.shape)
            datasets[key] = f.create_dataset(key, (0, *box.shape), box.dtype, maxshape=(None, *box.shape), chunks=chunks)
        datasets["action"] = f.create_dataset("action", (0, 4), np.float32, maxshape=(None, 4), chunks=(1024, 4))
        ends, n = [], 0
        for _ in range(episodes):
            for t in range(steps):
                for key, dataset in datasets.items():
                    dataset.resize(n + 1, axis=0)
                    dataset[n] = data[key][t]
                n += 1
            ends.append(n)
        f.create_dataset("episode_ends", data=np.array(ends))
    return time.perf_counter() - start


def rate(run: Callable[[], object], items: int, seconds: float = 3.0) -> float:
    """Items per second of `run` (which handles `items` items), repeated for about `seconds`."""
    run()  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run()
        count += 1
    return count * items / (time.perf_counter() - start)


def disk_bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def bench_writes(episodes: int, steps: int, hdf5: bool = False) -> dict[str, dict[str, float]]:
    """Frames/s and bytes/frame of every write setup, into the store (or, with `hdf5`, into HDF5)."""
    figures = {}
    with tempfile.TemporaryDirectory(prefix="dataset_io-") as tmp:
        for name, cameras, height, width, share in WRITE_SETUPS:
            space = make_space(cameras, height, width)
            data = make_steps(space, steps)
            count = max(1, round(episodes * share))
            path = Path(tmp) / name
            cpu, parts = time.process_time(), {}
            seconds = write_hdf5(path, space, data, count, steps) if hdf5 else write_store(
                path, space, data, count, steps, parts)
            cpu = time.process_time() - cpu
            figures[name] = {"frames": count * steps, "fps": count * steps / seconds,
                             "cpu_ms_per_frame": 1e3 * cpu / (count * steps),
                             "bytes_per_frame": disk_bytes(path) / (count * steps),
                             **{f"{part}_ms": 1e3 * value for part, value in parts.items()}}
    return figures


def write_rounds(args: argparse.Namespace, tmp: Path) -> dict[str, list[dict]]:
    """Per side (store now, store at --baseline, HDF5), the write figures of each round, alternating."""
    sizes = ["--episodes", str(args.episodes), "--steps", str(args.steps)]
    override = ("tether.datasets", extract_package(args.baseline, "datasets", tmp)) if args.baseline else None
    rounds: dict[str, list[dict]] = {"store": [], "baseline": [], "hdf5": []}
    for _ in range(args.rounds):
        rounds["store"].append(run_module("benchmarks.dataset_io", ["--write-only", *sizes]))
        if override is not None:
            before = run_module("benchmarks.dataset_io", ["--write-only", *sizes], override=override)
            if not before.pop("store_module").startswith(str(override[1])):
                raise SystemExit(f"baseline {args.baseline}: the child did not load the old tether.datasets")
            rounds["baseline"].append(before)
        rounds["hdf5"].append(bench_writes(args.episodes, args.steps, hdf5=True))
    return rounds


def median_figures(rounds: list[dict], setup: str) -> dict[str, float]:
    keys = [key for key in rounds[0][setup] if all(key in r[setup] for r in rounds)]
    return {key: float(np.median([r[setup][key] for r in rounds])) for key in keys}


def bench_sampling(tmp: Path, episodes: int, steps: int) -> dict:
    """Sampling from a two-camera 128x128 store, and from the same data in HDF5."""
    space = make_space(2, 128, 128)
    data = make_steps(space, steps)
    store_path, hdf5_path = tmp / "sample.zarr", tmp / "sample.h5"
    write_store(store_path, space, data, episodes, steps)
    write_hdf5(hdf5_path, space, data, episodes, steps)
    store = EpisodeStore(store_path)
    rng = np.random.default_rng(0)
    buffer = replay_from_store(store_path)
    cached = TransitionSampler(store)
    lazy = TransitionSampler(store, cache=False)
    windows = SequenceSampler(store, n_obs_steps=2, horizon=16)
    with h5py.File(hdf5_path, "r") as f:
        n = f["action"].shape[0]

        def hdf5_batch() -> None:
            rows = np.unique(rng.integers(0, n - 1, 256))  # h5py needs increasing indices
            for key in space.spaces:
                f[key][rows], f[key][rows + 1]
            f["action"][rows]

        hdf5_rate = rate(hdf5_batch, 256)
    return {
        "replay_buffer": rate(lambda: buffer.sample(256, rng), 256),
        "store_cached": rate(lambda: cached.sample(256, rng), 256),
        "store_from_disk": rate(lambda: lazy.sample(256, rng), 256),
        "hdf5_from_disk": hdf5_rate,
        "diffusion_windows": rate(lambda: windows.sample(64, rng), 64),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="Alternating write rounds; figures are medians.")
    parser.add_argument("--baseline", help="Git revision whose tether.datasets is measured beside the current one.")
    parser.add_argument("--write-only", action="store_true", help="Print the store's write figures as JSON (a child).")
    args = parser.parse_args()
    if args.write_only:
        figures = bench_writes(args.episodes, args.steps)
        print(json.dumps({**figures, "store_module": tether.datasets.store.__file__}))
        return
    tmp = Path(tempfile.mkdtemp(prefix="dataset_io-"))
    try:
        rounds = write_rounds(args, tmp)
        sampling = bench_sampling(tmp, args.episodes, args.steps)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    writes = []
    for setup, *_ in WRITE_SETUPS:
        store, hdf5 = median_figures(rounds["store"], setup), median_figures(rounds["hdf5"], setup)
        before = median_figures(rounds["baseline"], setup) if rounds["baseline"] else None
        writes.append({"setup": setup, "frames": store["frames"], "store_fps": store["fps"], "hdf5_fps": hdf5["fps"],
                       "store_x_real_time": store["fps"] / REAL_TIME_FPS, "store_cpu_ms": store["cpu_ms_per_frame"],
                       "store_bytes_per_frame": store["bytes_per_frame"], "hdf5_bytes_per_frame": hdf5["bytes_per_frame"],
                       "baseline_fps": before and before["fps"], "baseline_cpu_ms": before and before["cpu_ms_per_frame"],
                       "baseline_bytes_per_frame": before and before["bytes_per_frame"],
                       **{f"store_{part}_ms": store[f"{part}_ms"] for part in ("create", "commit", "close")}})  # fmt: skip
    rev = args.baseline
    write_rows = [
        [w["setup"], w["store_fps"], w["store_x_real_time"],
         *([w["baseline_fps"], f"{w['store_fps'] / w['baseline_fps']:.2f}x"] if rev else []),
         f"{w['store_cpu_ms']:.2f}",
         *([f"{w['baseline_cpu_ms']:.2f}", f"{w['baseline_cpu_ms'] / w['store_cpu_ms']:.2f}x"] if rev else []),
         w["hdf5_fps"], w["store_fps"] / w["hdf5_fps"], w["store_bytes_per_frame"] / 1e3,
         *([w["baseline_bytes_per_frame"] / 1e3] if rev else []),
         w["hdf5_bytes_per_frame"] / 1e3, w["hdf5_bytes_per_frame"] / w["store_bytes_per_frame"]]
        for w in writes
    ]  # fmt: skip
    table = markdown_table(
        ["recording", "store frames/s", "x real time (30 fps)",
         *([f"store@{rev} frames/s", "wall speed-up"] if rev else []), "store CPU ms/frame",
         *([f"store@{rev} CPU ms/frame", "CPU cost ratio"] if rev else []),
         "HDF5 frames/s", "store / HDF5 speed", "store kB/frame",
         *([f"store@{rev} kB/frame"] if rev else []), "HDF5 kB/frame", "HDF5 / store size"],
        write_rows,
    )  # fmt: skip
    part_rows = []
    for w, setup in zip(writes, WRITE_SETUPS):
        episodes = max(1, round(args.episodes * setup[-1]))
        streaming = 1e3 * w["frames"] / w["store_fps"] - w["store_create_ms"] - w["store_commit_ms"] - w["store_close_ms"]
        part_rows.append([w["setup"], w["store_create_ms"], w["store_commit_ms"] / episodes, w["store_close_ms"],
                          streaming / w["frames"], 1e3 / w["hdf5_fps"]])
    table += "\n\n" + markdown_table(
        ["where the store's wall time goes", "create ms", "commit ms per episode", "close ms",
         "the rest (add_step, streaming) ms/frame", "HDF5 ms/frame, all included"], part_rows)
    sample_rows = [
        ["RL batch 256, 2x128x128: ReplayBuffer (memory)", sampling["replay_buffer"], ""],
        ["RL batch 256: TransitionSampler, cached", sampling["store_cached"], ""],
        ["RL batch 256: TransitionSampler, from disk (zarr)", sampling["store_from_disk"],
         f"{sampling['store_from_disk'] / sampling['hdf5_from_disk']:.2f}x HDF5"],
        ["RL batch 256: h5py fancy indexing, from disk", sampling["hdf5_from_disk"], "1.00x"],
        ["diffusion windows (2 obs, horizon 16), batch 64, cached", sampling["diffusion_windows"], ""],
    ]  # fmt: skip
    table += "\n\n" + markdown_table(["sampling", "samples/s", "vs HDF5"], sample_rows)
    load = os.getloadavg()[0]
    command = (f"--episodes {args.episodes} --steps {args.steps} --rounds {args.rounds}"
               + (f" --baseline {args.baseline}" if args.baseline else ""))
    notes = (
        f"`.venv/bin/python -m benchmarks.dataset_io {command}` on a 2-core machine shared with other jobs (1-min "
        f"load average {load:.1f} at the end). Writes: median of {args.rounds} rounds, each a fresh child process "
        "per store side, alternating with HDF5"
        + (f" and with the store code of revision {args.baseline} (its tether.datasets, extracted by git archive)"
           if args.baseline else "")
        + ". CPU ms/frame is the writing process's CPU time (all its threads) per recorded frame, which other jobs on "
        "the machine disturb far less than wall time. Recording is one `add_step` per frame with lossless images (blosc, "
        "up to 16 frames per ~512 KiB chunk, a 640x480 frame alone) and the commit at each episode end, the store "
        "created and closed inside the timing; HDF5 is h5py with one-frame chunks, no compression, resize + "
        "write per step. Where the time goes: medians of each part (the rest is the recording's median time less the "
        "median parts, so approximate). Frames are synthetic camera-like images (shading, a moving object, sensor noise). The "
        f"640x480 run records half as many episodes of the same length ({args.steps} steps)."
    )
    results = {"args": vars(args), "load_average": load, "write": writes, "write_rounds": rounds, "sampling": sampling}
    write_results("dataset_io", results, table, notes)
    print(table)


if __name__ == "__main__":
    main()
