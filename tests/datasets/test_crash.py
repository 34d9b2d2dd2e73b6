"""A real child process appends to a store and is killed with SIGKILL at random moments."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import zarr

from tether.datasets.store import EpisodeStore
from tether.datasets.verify import repair, verify

CHILD = Path(__file__).with_name("writer_child.py")


def _child_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("writer_child", CHILD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _start(path: Path, first: int, count: int, pause_s: float) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), str(first), str(count), str(pause_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()  # imports done, store open
    assert line.strip() == "ready", child.stderr.read() if child.stderr else line
    return child


def _assert_committed_exact(store: EpisodeStore, marked: SimpleNamespace, child: ModuleType) -> None:
    for info in store.episodes:
        assert info.seed == info.index and info.source == "sim" and info.success == (info.index % 2 == 0)
        expected = marked.episode(info.index, child.child_length(info.index), image_shape=child.IMAGE_SHAPE)
        stored = store.episode(info.index)
        for key in expected.obs:
            np.testing.assert_array_equal(stored.obs[key], expected.obs[key], err_msg=f"episode {info.index} {key}")
            np.testing.assert_array_equal(stored.final_obs[key], expected.final_obs[key])
        for name in ("action", "policy_action", "reward", "terminated", "truncated", "intervened", "timestamp"):
            np.testing.assert_array_equal(getattr(stored, name), getattr(expected, name), err_msg=name)


def test_sigkill_at_random_points_loses_no_committed_episode(tmp_path: Path, marked: SimpleNamespace) -> None:
    child_module = _child_module()
    path = tmp_path / "crash.zarr"
    rng = np.random.default_rng(2026)
    committed = 0
    tails = 0
    for _ in range(10):
        child = _start(path, committed, 10_000, pause_s=0.0)
        time.sleep(rng.uniform(0.05, 0.6))
        child.kill()  # SIGKILL: no cleanup, no finally blocks
        out, _ = child.communicate()
        assert child.returncode == -signal.SIGKILL
        reported = [int(line.split()[1]) for line in out.splitlines() if line.startswith("committed")]
        store = EpisodeStore(path)
        # everything the child saw committed is there; at most the one in flight landed too
        assert committed + len(reported) <= store.n_episodes <= committed + len(reported) + 1
        _assert_committed_exact(store, marked, child_module)
        report = verify(path)
        assert report.ok, report.problems
        tails += any("uncommitted tail" in note for note in report.notes)
        committed = store.n_episodes
    assert committed > 10  # the kills landed while episodes were being written
    assert tails > 0  # ... and some mid-episode
    result = repair(path)
    after = verify(path)
    assert after.ok and not after.notes and result.dropped_frames >= 0
    store = EpisodeStore(path)
    assert store.n_episodes == committed
    assert zarr.open_array(str(path), path="data/action").shape[0] == store.n_frames
    _assert_committed_exact(store, marked, child_module)


def test_reader_in_another_process_sees_only_committed_episodes(tmp_path: Path, marked: SimpleNamespace) -> None:
    child_module = _child_module()
    path = tmp_path / "live.zarr"
    child = _start(path, 0, 12, pause_s=0.02)
    store = EpisodeStore(path)
    seen = []
    while child.poll() is None or store.n_episodes < 12:
        seen.append(store.refresh())
        _assert_committed_exact(store, marked, child_module)  # never a half-written episode
        if child.poll() is not None and child.returncode != 0:
            raise AssertionError(child.stderr.read() if child.stderr else "child failed")
    assert child.wait() == 0
    assert seen == sorted(seen) and seen[-1] == 12 and len(set(seen)) > 2  # it watched commits arrive
    assert os.path.exists(path / ".writer.lock")
