"""Spinning nodes: one single-threaded executor and one thread per node.

rclpy's MultiThreadedExecutor rebuilds its wait set in Python for every callback it hands
out and polls its worker futures in a tight loop. With the seven nodes of a twin graph in
one process it took a whole core and ran the actor at 2 steps in 12 s instead of its
10 Hz. A SingleThreadedExecutor per node waits in C on that node's few entities, so the
nodes run side by side (the GIL is released while they wait) and a slow callback of one
node (a recorder committing an episode) does not delay another (the arm's watchdog).

Within a node callbacks run one at a time: node callbacks must not block on each other. A
node whose callbacks must never wait behind its others (the arm's e-stop behind a home) puts
them on companion nodes, listed in its `companions` attribute; each spins on a thread of its own.
"""

from __future__ import annotations

import logging
import threading

import rclpy
from rclpy.executors import ExternalShutdownException, ShutdownException, SingleThreadedExecutor
from rclpy.node import Node

log = logging.getLogger(__name__)


class NodeSpinners:
    """Spins each added node on its own thread until `shutdown`."""

    def __init__(self, context: rclpy.Context) -> None:
        self.context = context
        self._executors: list[tuple[str, SingleThreadedExecutor]] = []
        self._threads: list[threading.Thread] = []
        self._started = self._stopped = False

    def add(self, node: Node) -> None:
        """Spin `node` and its companions too (at once, if already started)."""
        for each in (node, *getattr(node, "companions", ())):
            executor = SingleThreadedExecutor(context=self.context)
            executor.add_node(each)
            self._executors.append((each.get_name(), executor))
            if self._started:
                self._start_one(each.get_name(), executor)

    def start(self) -> None:
        self._started = True
        for name, executor in self._executors:
            self._start_one(name, executor)

    def _start_one(self, name: str, executor: SingleThreadedExecutor) -> None:
        thread = threading.Thread(target=self._spin, args=(name, executor), name=f"ros-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _spin(self, name: str, executor: SingleThreadedExecutor) -> None:
        """Spin until shutdown. A callback that raises is logged and spinning goes on: one bad message must
        not silently stop a node."""
        while not self._stopped and self.context.ok():
            try:
                executor.spin()
            except (ExternalShutdownException, ShutdownException):
                return
            except Exception:  # noqa: BLE001 - any callback error; the node keeps running
                if not self._stopped:
                    log.exception("a callback of node '%s' raised; it keeps spinning", name)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop spinning: shuts the context down (which wakes every executor) and joins the threads."""
        self._stopped = True
        if self.context.ok():
            rclpy.shutdown(context=self.context)
        for thread in self._threads:
            thread.join(timeout=timeout_s)
        for _, executor in self._executors:
            executor.shutdown(timeout_sec=1.0)
