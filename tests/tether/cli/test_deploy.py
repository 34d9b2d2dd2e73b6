"""`tether deploy` end to end on the twin rig: a real SAC checkpoint acts through the graph (arm node
with its safety layer, eval actor, recorder) and every episode lands in the store."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tether import spaces
from tether.cli import app
from tether.cli.deploy import deploy_nodes, run_deploy
from tether.config import MarkerConfig, MirrorConfig, load_rig
from tether.datasets.store import EpisodeStore
from tether.policies.sac import SACAgent, SACConfig

pytestmark = pytest.mark.usefixtures("ros_domain")


def reach_rig(episode_length: int = 6):
    rig = load_rig("twin_panda")
    task = rig.task.model_copy(update={"name": "reach", "episode_length": episode_length})
    return rig.model_copy(update={"task": task, "cameras": []})


def reach_checkpoint(path, rig):
    space = spaces.observation_space([], extra_state={"target_pos": 3}, gripper=False)
    sac = SACConfig(hidden_dims=(32, 32), grasp_critic=False)  # reach's action has no gripper to grasp with
    agent = SACAgent(space, spaces.action_space(rig).shape[0], sac, seed=0)
    return agent.save(path)


def test_deploy_runs_a_checkpoint_on_the_twin_and_records_every_episode(tmp_path):
    rig = reach_rig()
    checkpoint = reach_checkpoint(tmp_path / "policy", rig)
    store = tmp_path / "deploy.zarr"
    summary = run_deploy(checkpoint, rig, 2, store, time_scale=3.0, timeout_s=120, progress=False)

    assert summary["episodes"] == 2 and set(summary["outcomes"]) <= {"success", "timeout"}
    assert summary["starved_ticks"] is None and summary["steps"] >= 2  # SAC acts per tick: no chunks to wait for
    assert 0.0 <= summary["success_rate"] <= 1.0
    assert summary["tracking_mean_mm"] is not None and summary["tracking_max_mm"] >= summary["tracking_mean_mm"]
    episodes = EpisodeStore(store)
    assert episodes.n_episodes == 2 and {e.source for e in episodes.episodes} == {"policy"}
    assert all(e.stop - e.start <= rig.task.episode_length for e in episodes.episodes)
    first = episodes.episode(0)
    assert first.action.shape[1] == 3  # reach acts without a gripper, from the checkpoint to the store
    np.testing.assert_array_equal(first.action, first.policy_action)  # eval: the policy alone acted
    assert not first.intervened.any()
    # the reach targets came from the twin and differ between episodes; the final distances are theirs
    targets = episodes.load("state/target_pos")
    assert not np.allclose(targets[0], targets[-1])
    final = episodes.final_obs(spaces.TCP_POSE)[:, :3] - episodes.final_obs("state/target_pos")
    np.testing.assert_allclose(summary["final_target_distance_m"], np.linalg.norm(final, axis=1), rtol=1e-6)

    # Offline evaluation on twin replays of the recorded episodes: the same deterministic policy,
    # seeing the mirror of the logged state, proposes exactly what was logged.
    report = tmp_path / "replay.json"
    result = CliRunner().invoke(app, ["eval", "--policy", str(checkpoint), "--twin-replay", str(store), "--json", str(report)])
    assert result.exit_code == 0, result.output
    replay = json.loads(report.read_text())
    assert replay["episodes"] == 2 and replay["rig"] == rig.name
    assert replay["action_mae"] < 1e-5 and replay["gripper_agreement"] is None  # no gripper to agree on
    assert replay["direction_cosine"] is None or replay["direction_cosine"] > 0.999
    assert [e["steps"] for e in replay["per_episode"]] == [e.stop - e.start for e in episodes.episodes]


def test_deploy_nodes_follow_the_rig_and_the_policy():
    twin = reach_rig()
    assert deploy_nodes(twin, (spaces.TCP_POSE, "state/target_pos")) == (("twin", "arm", "actor", "recorder"), "state")
    franka = load_rig("franka_realsense")
    reach = franka.model_copy(update={"task": franka.task.model_copy(update={"name": "reach"})})
    assert deploy_nodes(reach, (spaces.TCP_POSE, "state/target_pos")) == (("arm", "actor", "recorder", "reach"), "state")
    assert deploy_nodes(franka, (spaces.TCP_POSE, "images/front")) == (("arm", "cameras", "actor", "recorder"), "pixels")
    with pytest.raises(ValueError, match=r"observes \['state/cube_pos'\]; on a rig with no twin they come from markers"):
        deploy_nodes(franka, (spaces.TCP_POSE, "state/cube_pos"))
    mirror = MirrorConfig(detect_camera="front", markers=[MarkerConfig(id=0, body="cube", size_m=0.04)])
    marked = franka.model_copy(update={"mirror": mirror})  # the cube's pose and the success come from the mirror
    assert deploy_nodes(marked, (spaces.TCP_POSE, "state/cube_pos")) == (
        ("arm", "cameras", "actor", "recorder", "mirror"), "state")


def plain(text: str) -> str:
    """CLI output without the error panel's frame and line wrapping."""
    return " ".join(text.replace("│", " ").split())


def test_deploy_cli_refuses_a_folder_without_a_checkpoint_and_an_unknown_task(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["deploy", "--policy", str(tmp_path)])
    assert result.exit_code != 0 and "not a checkpoint folder (no config.json)" in plain(result.output)
    checkpoint = reach_checkpoint(tmp_path / "policy", reach_rig())
    result = runner.invoke(app, ["deploy", "--policy", str(checkpoint), "--task", "juggle"])
    assert result.exit_code != 0 and "task.name" in str(result.exception) + result.output
