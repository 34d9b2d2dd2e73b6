"""Recorder and learner nodes refuse transitions that do not fit their store / buffers (another graph on the
same ROS domain, a node of another rig) without losing the episode they are recording or stopping."""

import numpy as np
from std_msgs.msg import UInt8MultiArray

from tether.config import load_rig
from tether.datasets.store import EpisodeStore
from tether.robot_ws import messages, qos
from tether.robot_ws.nodes.recorder import RecorderNode
from tether.types import Transition

RIG = load_rig("twin_panda")


def _transition(keys: dict[str, int], value: float, *, terminated: bool = False) -> Transition:
    obs = {key: np.full(dim, value, np.float32) for key, dim in keys.items()}
    next_obs = {key: np.full(dim, value + 1, np.float32) for key, dim in keys.items()}
    return Transition(obs, np.zeros(4, np.float32), float(terminated), next_obs, terminated, False, False)


OURS = {"state/tcp_pose": 7, "state/gripper": 1}
FOREIGN = {"state/tcp_pose": 7, "state/target_pos": 3}


def _send(publisher, transition: Transition, episode: int, step: int, outcome: str = "") -> None:
    publisher.publish(messages.transition_msg(transition, stamp=float(step), episode=episode, step=step, outcome=outcome))


def test_recorder_refuses_a_foreign_transition_and_keeps_its_episode(ros, wait_for, tmp_path):
    recorder = ros.add(RecorderNode(RIG, tmp_path / "episodes.zarr", "hil", "pick_cube", context=ros.context))
    sender = ros.node("sender", RIG.namespace)
    publisher = sender.create_publisher(UInt8MultiArray, "learner/transitions", qos.STREAM)
    ros.start()
    assert wait_for(lambda: publisher.get_subscription_count() > 0)
    _send(publisher, _transition(OURS, 0.0), episode=1, step=0)
    assert wait_for(lambda: recorder.writer is not None and recorder.writer.steps_in_episode == 1)
    _send(publisher, _transition(FOREIGN, 5.0), episode=7, step=0)  # another graph's episode 7
    assert wait_for(lambda: recorder.rejected == 1)
    _send(publisher, _transition(OURS, 1.0, terminated=True), episode=1, step=1, outcome="success")
    assert wait_for(lambda: recorder.committed == 1)
    recorder.close()
    store = EpisodeStore(tmp_path / "episodes.zarr")
    assert store.n_episodes == 1 and recorder.discarded == 0
    assert np.array_equal(store.episode(0).obs["state/gripper"][:, 0], [0.0, 1.0])


def test_learner_refuses_a_foreign_transition_and_counts_only_its_own(ros, wait_for, small_learner):
    learner, _, publisher = small_learner(OURS)
    ros.start()
    assert wait_for(lambda: publisher.get_subscription_count() > 0)
    for step, keys in enumerate((OURS, FOREIGN, OURS)):
        _send(publisher, _transition(keys, float(step)), episode=1, step=step)
    assert wait_for(lambda: learner.env_steps == 2 and learner.rejected == 1)
    assert len(learner.online) == 2 and learner.stats()["rejected_transitions"] == 1
    learner.shutdown()
