"""The whole graph on the twin: recording in one process, across processes, and a learner that dies."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from tether.cli.robot import learner_process, stop_process
from tether.config import load_rig
from tether.datasets.store import EpisodeStore
from tether.robot_ws.graph import Graph, GraphSpec

RECORD_NODES = ("twin", "arm", "cameras", "teleop", "actor", "recorder")


def test_record_scripted_demos_in_one_process(tmp_path):
    store_path = tmp_path / "demos.zarr"
    spec = GraphSpec(
        rig=load_rig("twin_panda"), nodes=RECORD_NODES, obs_mode="all", actor_mode="teleop", operator="always",
        store=store_path, source="scripted", time_scale=3.0,
    )
    with Graph(spec) as graph:
        recorder = graph.node("recorder")
        assert graph.wait(lambda: recorder.committed >= 2, timeout_s=120)
    store = EpisodeStore(store_path)
    assert store.n_episodes == 2
    assert all(info.success for info in store.episodes)
    episode = store.episode(0)
    assert episode.obs["images/front"].shape[1:] == (128, 128, 3)
    assert episode.intervened.all() and episode.terminated[-1] and episode.reward[-1] == 1.0
    stamps = store.load("timestamp")  # acquisition times, on the twin's sim clock
    assert np.all(np.diff(stamps) >= 0)  # across the reset between the episodes too: /clock never goes back
    assert np.median(np.diff(stamps)) == pytest.approx(0.1, abs=0.03)


def test_twin_in_another_process(tmp_path):
    """The twin (with its arm, cameras and scripted operator) in a child process; actor and recorder here."""
    log = tmp_path / "twin.log"  # a file, not a pipe nobody reads while the child runs (a full pipe would block it)
    twin = subprocess.Popen(
        [sys.executable, "-m", "tether.cli", "node", "twin", "--rig", "twin_panda"],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=os.environ.copy(),
    )
    try:
        spec = GraphSpec(
            rig=load_rig("twin_panda"), nodes=("actor", "recorder"), obs_mode="state", actor_mode="teleop",
            store=tmp_path / "remote.zarr", source="scripted",
        )
        with Graph(spec) as graph:
            recorder = graph.node("recorder")
            committed = graph.wait(lambda: recorder.committed >= 1, timeout_s=240)
            assert committed, (graph.node("actor").counters, log.read_text()[-1000:])
        assert EpisodeStore(tmp_path / "remote.zarr").n_episodes >= 1
    finally:
        twin.send_signal(signal.SIGINT)
        assert twin.wait(timeout=30) == 0, log.read_text()[-2000:]


def test_learner_killed_and_restarted_while_the_actor_keeps_stepping(tmp_path):
    run_dir = tmp_path / "run"
    kwargs = dict(obs="state", utd=1, seed=0, time_scale=1.0, checkpoint_every=60)
    learner = learner_process("twin_panda", run_dir, None, **kwargs)
    spec = GraphSpec(
        rig=load_rig("twin_panda"), nodes=("twin", "arm", "teleop", "actor", "recorder"), obs_mode="state",
        actor_mode="hil", operator="takeover", store=run_dir / "episodes.zarr", time_scale=1.0,
    )
    try:
        with Graph(spec) as graph:
            actor, arm = graph.node("actor"), graph.node("arm")
            assert graph.wait(lambda: (run_dir / "checkpoint" / "config.json").exists(), timeout_s=300)
            assert actor.weights_version >= 0
            learner.kill()  # SIGKILL: no checkpoint, no goodbye
            learner.wait()
            steps_at_kill = actor.counters["steps"]
            # Still acting with the last weights (10 Hz nominal; slack for a loaded test machine).
            assert graph.wait(lambda: actor.counters["steps"] >= steps_at_kill + 20, timeout_s=60)
            received = actor.counters["weights_received"]
            learner = learner_process("twin_panda", run_dir, None, **kwargs)
            assert graph.wait(lambda: actor.counters["weights_received"] > received, timeout_s=300)
            unsafe = {k: v for k, v in arm.counters.items() if k.startswith("rejected_non_finite")}
            assert not unsafe
    finally:
        stop_process(learner)
    log = (run_dir / "learner.log").read_text()
    assert "resumed from" in log
