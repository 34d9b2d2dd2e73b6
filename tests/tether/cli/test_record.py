"""`tether record` on a disk that fills up: the episode under way is dropped, the committed ones verify, and
the command ends with one error line and exit code 1 instead of hanging."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.datasets.store import EpisodeStore
from tether.datasets.verify import verify

DISK = "2M"  # one twin episode (two 128x128 cameras, ~60-100 steps) takes ~1.5 MB: the second cannot fit


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real tmpfs of DISK bytes (the test machine runs as root), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_record_on_a_full_disk_stops_with_one_line_and_keeps_committed_episodes(small_disk: Path, ros_domain) -> None:
    store = small_disk / "demos.zarr"
    result = subprocess.run(
        [sys.executable, "-m", "tether.cli", "record", "--out", str(store), "-n", "5", "--time-scale", "5"],
        capture_output=True, text=True, timeout=300,
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1, result.stderr[-2000:]
    assert errors == [result.stderr.strip().splitlines()[-1]] and "Traceback" not in result.stderr
    assert "writing failed (No space left on device); the episode under way was dropped" in errors[0]
    report = verify(store)
    assert report.ok, report.problems
    committed = EpisodeStore(store)
    assert 1 <= committed.n_episodes < 5 and f"the {committed.n_episodes} committed episode(s) are intact" in errors[0]
