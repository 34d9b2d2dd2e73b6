"""Judge node: a task judged outside tether (a person at the rig, a scale, a lab that knows the truth).

It hands every `episode/events` message (a reset, an outcome) to `on_event`, polls `watch` at 50 Hz and,
with `announce`, publishes its verdict on `twin/success`, the graph's task-judge topic (as the twin and
reach nodes do). Callbacks run one at a time (the node's default, mutually exclusive callback group), so
the code behind them needs no locks.
"""

from __future__ import annotations

from collections.abc import Callable

from rclpy.node import Node
from std_msgs.msg import Bool, String

from tether.config import RigConfig
from tether.robot_ws import qos

WATCH_PERIOD_S = 0.02


class JudgeNode(Node):
    def __init__(
        self, rig: RigConfig, on_event: Callable[[str], None], watch: Callable[[], bool] | None = None, *,
        announce: bool = True, name: str = "judge", **node_kwargs,
    ) -> None:
        super().__init__(name, namespace=rig.namespace, **node_kwargs)
        self.create_subscription(String, "episode/events", lambda msg: on_event(msg.data), qos.EVENTS)
        if watch is not None:
            success_pub = self.create_publisher(Bool, "twin/success", qos.SENSOR) if announce else None

            def poll() -> None:
                verdict = watch()
                if success_pub is not None:
                    success_pub.publish(Bool(data=verdict))

            self.create_timer(WATCH_PERIOD_S, poll)
