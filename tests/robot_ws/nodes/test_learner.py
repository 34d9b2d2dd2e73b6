"""The learner node's intake: a NaN or inf in any part of a transition is dropped and counted, never stored,
and the node keeps learning from the finite ones."""

from dataclasses import replace

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray

from tether.robot_ws import messages, qos
from tether.robot_ws.nodes.learner import non_finite_parts
from tether.types import Transition

KEYS = {"state/tcp_pose": 7, "state/gripper": 1}


def _transition(value: float, policy_action: bool = False) -> Transition:
    obs = {key: np.full(dim, value, np.float32) for key, dim in KEYS.items()}
    next_obs = {key: np.full(dim, value + 1, np.float32) for key, dim in KEYS.items()}
    proposal = np.zeros(4, np.float32) if policy_action else None
    return Transition(obs, np.zeros(4, np.float32), 0.0, next_obs, False, False, False, proposal)


def _poison(transition: Transition, part: str, bad: float) -> Transition:
    """`transition` with one element of `part` set to `bad`."""
    if part in ("obs", "next_obs"):
        obs = {key: value.copy() for key, value in getattr(transition, part).items()}
        obs["state/tcp_pose"][3] = bad
        return replace(transition, **{part: obs})
    if part == "reward":
        return replace(transition, reward=bad)
    array = getattr(transition, part).copy()
    array[1] = bad
    return replace(transition, **{part: array})


PARTS = ("obs", "action", "reward", "next_obs", "policy_action")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("part", PARTS)
def test_non_finite_parts_names_the_poisoned_part(part, bad):
    clean = _transition(0.0, policy_action=True)
    assert non_finite_parts(clean) == []
    expected = f"{part}['state/tcp_pose']" if part in ("obs", "next_obs") else part
    assert non_finite_parts(_poison(clean, part, bad)) == [expected]


def test_learner_drops_and_counts_non_finite_transitions_and_keeps_the_finite_ones(ros, wait_for, small_learner):
    learner, sender, publisher = small_learner(KEYS)
    diagnostics: list[DiagnosticArray] = []
    sender.create_subscription(DiagnosticArray, "diagnostics", diagnostics.append, qos.COMMAND)
    ros.start()
    assert wait_for(lambda: publisher.get_subscription_count() > 0)
    poisoned = [_poison(_transition(float(i), policy_action=True), part, bad)
                for i, (part, bad) in enumerate((p, b) for p in PARTS for b in (np.nan, np.inf))]
    stream = [_transition(100.0)] + poisoned + [_transition(200.0)]
    for step, transition in enumerate(stream):
        publisher.publish(messages.transition_msg(transition, stamp=float(step), episode=1, step=step, outcome=""))
    assert wait_for(lambda: learner.env_steps + learner.non_finite == len(stream))
    assert learner.non_finite == len(poisoned) and learner.env_steps == 2
    assert len(learner.online) == 2 and learner.stats()["non_finite_transitions"] == len(poisoned)
    stored = learner.online.sample(8, np.random.default_rng(0))
    for array in (*stored.obs.values(), *stored.next_obs.values(), stored.action, stored.reward):
        assert np.isfinite(array).all()
    assert wait_for(lambda: any(s.name == "learner" for d in diagnostics for s in d.status), timeout_s=5)
    values = {kv.key: kv.value for s in diagnostics[-1].status for kv in s.values}
    assert values["non_finite_transitions"] == str(len(poisoned))
    learner.shutdown()
