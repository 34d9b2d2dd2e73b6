"""Running nodes in a private ROS context for a test: the `ros` harness and `wait_for`."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

import rclpy
from rclpy.node import Node

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
