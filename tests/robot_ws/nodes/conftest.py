"""Running nodes in a private ROS context for a test: the `ros` harness and `wait_for`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node


class RosHarness:
    """Own context + executor thread; `node(name)` makes a plain node for test publishers."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._nodes: list[Node] = []

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - raised by a shutting-down executor
            pass

    def add(self, node: Node) -> Node:
        self._nodes.append(node)
        self.executor.add_node(node)
        return node

    def node(self, name: str, namespace: str) -> Node:
        return self.add(rclpy.create_node(name, namespace=namespace, context=self.context))

    def start(self) -> RosHarness:
        self._thread.start()
        return self

    def close(self) -> None:
        for node in self._nodes:
            for timer in list(node.timers):
                timer.cancel()
        rclpy.shutdown(context=self.context)
        self._thread.join(timeout=5)
        self.executor.shutdown(timeout_sec=2)
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
