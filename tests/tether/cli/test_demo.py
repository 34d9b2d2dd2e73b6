"""`tether demo` end to end, shortened: every phase runs through the graph and the summary holds what the
issue asks for. Whether training helps is measured by a full run (README), not here."""

import json

import numpy as np
from typer.testing import CliRunner

from tether.cli import app
from tether.cli.demo import _trailing_mean
from tether.datasets.store import EpisodeStore


def test_demo_runs_every_phase_through_the_graph_and_writes_its_summary(tmp_path, ros_domain):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, [
        "demo", "--out", str(out), "--demo-episodes", "2", "--steps", "120", "--eval-episodes", "2",
        "--time-scale", "3",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert {"success_before", "success_after", "eval_episodes", "env_steps", "updates", "intervention_rate",
            "wall_s"} <= set(summary)
    assert summary["eval_episodes"] == 2 and 0 <= summary["success_before"] <= 1 and 0 <= summary["success_after"] <= 1
    assert summary["env_steps"] >= 120 and summary["updates"] > 0
    assert summary["demo_episodes"] == 2
    for name in ("learning_curve.png", "eval_after_episode0.png"):
        assert (out / name).stat().st_size > 0
    for store, source in [("eval_before.zarr", "policy"), ("eval_after.zarr", "policy"), ("demos.zarr", None)]:
        episodes = EpisodeStore(out / store)
        assert episodes.n_episodes == 2
        if source:
            assert {e.source for e in episodes.episodes} == {source}
    assert EpisodeStore(out / "hil" / "episodes.zarr").n_episodes >= 1
    assert "success after training" in result.output


def test_trailing_mean_averages_only_what_came_before():
    np.testing.assert_allclose(_trailing_mean(np.array([1.0, 0.0, 1.0, 1.0]), 2), [1.0, 0.5, 0.5, 1.0])
