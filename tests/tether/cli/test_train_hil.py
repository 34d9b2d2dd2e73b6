"""`tether train hil` on the twin with its learner killed (SIGKILL) partway: the actor keeps acting, the recorder
keeps committing episodes, the learner comes back from its checkpoint, and the summary counts the restart."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from typer.testing import CliRunner

from tether.cli import app
from tether.cli.learner_supervisor import PID_FILE
from tether.datasets.store import EpisodeStore, StoreError

LEARNER = {"sac": {"hidden_dims": [32, 32], "batch_size": 16}, "loop": {"learning_starts": 20, "checkpoint_every": 25}}
RESUMED = re.compile(r"resumed from \S+: (\d+) env steps")


def _wait(predicate: Callable[[], bool], done: threading.Event, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if done.is_set() or time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _pid(out: Path) -> int | None:
    try:
        return int((out / PID_FILE).read_text())
    except (FileNotFoundError, ValueError):  # not there yet, or caught half-written
        return None


def _exists_and(predicate: Callable[[], bool]) -> bool:
    try:
        return predicate()
    except FileNotFoundError:  # caught between the two renames that replace a checkpoint
        return False


def _committed(store: Path) -> int:
    try:
        return EpisodeStore(store).n_episodes
    except (StoreError, OSError, ValueError):  # not created yet, or read while the recorder writes it
        return -1


def _kill_the_learner_then_interrupt(out: Path, done: threading.Event, seen: dict) -> None:
    """Once the learner has checkpointed, SIGKILL it; once it is back, has checkpointed again and the recorder
    has committed another episode, Ctrl-C the run (SIGINT to this process, as a user would)."""
    try:
        if not _wait(lambda: (out / "checkpoint" / "config.json").exists() and _pid(out), done, 240):
            return
        seen["killed"] = pid = _pid(out)
        os.kill(pid, signal.SIGKILL)
        back = lambda: _pid(out) not in (None, pid) and RESUMED.search((out / "learner.log").read_text())  # noqa: E731
        if not _wait(back, done, 120):
            return
        seen["committed_when_back"] = committed = _committed(out / "episodes.zarr")
        back_at = time.time()
        # The restarted learner learns on: it checkpoints again (after checkpoint_every new transitions).
        checkpointed = lambda: (out / "checkpoint" / "config.json").stat().st_mtime > back_at  # noqa: E731
        _wait(lambda: _committed(out / "episodes.zarr") > committed and _exists_and(checkpointed), done, 120)
    finally:
        if not done.is_set():
            os.kill(os.getpid(), signal.SIGINT)


def test_train_hil_runs_on_through_a_learner_killed_with_sigkill(tmp_path, ros_domain, own_signal_handlers):
    out, config = tmp_path / "hil", tmp_path / "learner.yaml"
    config.write_text(yaml.safe_dump(LEARNER))
    done, seen = threading.Event(), {}
    killer = threading.Thread(target=_kill_the_learner_then_interrupt, args=(out, done, seen), daemon=True)
    killer.start()
    with own_signal_handlers():
        try:
            result = CliRunner().invoke(app, [
                "train", "hil", "--out", str(out), "--steps", "100000", "--config", str(config), "--time-scale", "5",
            ])
        finally:
            done.set()
            killer.join(timeout=30)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert "killed" in seen, "the learner never checkpointed"
    assert summary["learner_restarts"] >= 1
    [loss, *_] = summary["learner_losses"]
    assert loss["exit"] == -signal.SIGKILL
    # The robot side ran on: the actor kept sending transitions and the recorder kept committing episodes.
    assert summary["transitions"] > loss["transitions"]
    assert EpisodeStore(out / "episodes.zarr").n_episodes > max(loss["episodes_committed"], seen["committed_when_back"])
    # The learner resumed from its checkpoint (not from zero) and counted on from there.
    resumed_at = int(RESUMED.search((out / "learner.log").read_text()).group(1))
    assert resumed_at >= LEARNER["loop"]["checkpoint_every"]
    assert summary["learner"]["env_steps"] > resumed_at


def test_train_hil_gives_up_on_a_learner_that_dies_before_sending_weights_and_stops_cleanly(
    tmp_path, ros_domain, own_signal_handlers
):
    """A demo store the learner cannot read kills it at start: no restarts, the graph stops, one error line."""
    not_a_store = tmp_path / "demos.zarr"
    not_a_store.mkdir()
    with own_signal_handlers():
        result = CliRunner().invoke(app, [
            "train", "hil", "--out", str(tmp_path / "hil"), "--demos", str(not_a_store), "--steps", "100",
        ])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["learner_restarts"] == 0 and summary["transitions"] == 0
    assert re.fullmatch(r"learner exited with 2 before it sent weights; see \S+learner.log", summary["error"])
    assert result.stderr.splitlines()[-1] == f"error: {summary['error']}"  # after the progress bar
    assert "not a zarr store" in (tmp_path / "hil" / "learner.log").read_text()


def test_train_hil_refuses_a_bad_config_before_starting_anything(tmp_path):
    config = tmp_path / "learner.yaml"
    config.write_text(yaml.safe_dump({"loop": {"checkpoint_every": 0}}))
    result = subprocess.run(  # the console entry point, whose error line no terminal width wraps
        [sys.executable, "-m", "tether.cli", "train", "hil", "--out", str(tmp_path / "hil"), "--config", str(config)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and "loop: checkpoint_every" in result.stderr, result.stderr
    assert not (tmp_path / "hil").exists()


def test_train_hil_from_pixels_with_a_frozen_encoder_learns_on_cached_features_through_the_graph(
    tmp_path, ros_domain, own_signal_handlers
):
    """Two twin cameras through the camera node to the actor (frame-triggered steps) and, as transitions, to a learner
    whose frozen encoder caches each frame's features: it updates, checkpoints and keeps the images."""
    out, config = tmp_path / "hil", tmp_path / "learner.yaml"
    frozen = {"sac": {**LEARNER["sac"], "encoder": {"freeze_backbone": True}}, "loop": LEARNER["loop"]}
    config.write_text(yaml.safe_dump(frozen))
    with own_signal_handlers():
        result = CliRunner().invoke(app, [
            "train", "hil", "--obs", "pixels", "--out", str(out), "--steps", "60", "--config", str(config),
            "--rig", "twin_panda_demo", "--time-scale", "2",
        ])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["transitions"] >= 60 and summary["learner_restarts"] == 0
    stats = summary["learner"]
    assert stats["env_steps"] >= 60 and stats["critic_updates"] > 0 and stats["updates_per_s"] > 0
    checkpoint = json.loads((out / "checkpoint" / "config.json").read_text())
    assert checkpoint["sac"]["encoder"]["freeze_backbone"] is True
    assert {"images/front", "images/wrist"} <= set(checkpoint["observation_space"])
    online = EpisodeStore(out / "replay" / "online.zarr")  # the buffer on disk keeps the frames, not features
    assert {"images/front", "images/wrist"} <= set(online.observation_space.spaces)
