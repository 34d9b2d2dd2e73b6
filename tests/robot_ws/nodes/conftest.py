"""Running nodes in a private ROS context for a test: the `ros` harness and `wait_for`."""

from __future__ import annotations

import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
from std_msgs.msg import UInt8MultiArray

import rclpy
from rclpy.node import Node
from rclpy.publisher import Publisher

from tether.config import load_rig
from tether.policies.sac import SACConfig
from tether.robot_ws import qos
from tether.robot_ws.nodes.learner import LearnerNode
from tether.robot_ws.spinning import NodeSpinners


class RosHarness:
    """Own context, nodes spinning as a Graph spins them; `node(name)` makes a plain node for test publishers."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.spinners = NodeSpinners(self.context)
        self._nodes: list[Node] = []

    def add(self, node: Node) -> Node:
        self._nodes.append(node)
        self.spinners.add(node)
        return node

    def node(self, name: str, namespace: str) -> Node:
        return self.add(rclpy.create_node(name, namespace=namespace, context=self.context))

    def start(self) -> RosHarness:
        self.spinners.start()
        return self

    def close(self) -> None:
        for node in self._nodes:
            for timer in list(node.timers):
                timer.cancel()
        self.spinners.shutdown()
        for node in self._nodes:
            node.destroy_node()


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def ros():
    """A started private ROS context; closed after the test."""
    harness = RosHarness()
    yield harness
    harness.close()


@pytest.fixture(name="wait_for")
def wait_for_fixture():
    return wait_for


@pytest.fixture
def small_learner(ros, tmp_path):
    """Factory of a learner node (tiny SAC, run folder in tmp_path) on a state space of `keys` (name -> size),
    with a node that publishes `learner/transitions` to it; `ros` is not started yet."""

    def make(keys: dict[str, int]) -> tuple[LearnerNode, Node, Publisher]:
        rig = load_rig("twin_panda")
        space = gym.spaces.Dict({key: gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32) for key, dim in keys.items()})
        learner = ros.add(LearnerNode(rig, space, tmp_path / "run", sac=SACConfig(hidden_dims=(16,), batch_size=4),
                                      context=ros.context))
        sender = ros.node("sender", rig.namespace)
        return learner, sender, sender.create_publisher(UInt8MultiArray, "learner/transitions", qos.STREAM)

    return make
