"""The lab's judge: the person at a real rig who puts the cube back and says whether the pick worked.

A ROS 2 node of the benchmark, not of tether: at every `episode/events` "reset" (sent once the arm is
home) it places the cube at a fresh seeded pose, drawn from the rig's object ranges around the twin's
start (0.5, 0). For pick_cube it keeps the truth of every episode (`outcomes`: was the cube lifted 10 cm
at any moment before the actor ended it) and, unless the rig judges itself (the mirror's success from
the cube pose it perceives, `announce=False`), publishes `twin/success` from the true cube height, as
the twin node does in the twin. For reach the reach node judges and the cube is only moved out of the way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from rclpy.node import Node
from std_msgs.msg import Bool, String

from benchmarks.lab.lab import Lab
from tether.config import RigConfig
from tether.robot_ws import qos
from tether.robot_ws.network import new_context
from tether.robot_ws.spinning import NodeSpinners

SUCCESS_PERIOD_S = 0.02
ENDINGS = ("success", "failure", "timeout")  # the actor's outcome events that end an episode
NOMINAL_XY = np.array([0.5, 0.0])  # the twin's Task.nominal_xy
REACH_PARKING = (0.3, 0.45, 0.0)  # outside reach's workspace box, so a reach target never meets it


class LabJudge(Node):
    def __init__(self, lab: Lab, rig: RigConfig, *, seed: int = 0, announce: bool = True, **node_kwargs) -> None:
        super().__init__("lab_judge", namespace=rig.namespace, **node_kwargs)
        self.lab, self.rig = lab, rig
        self.rng = np.random.default_rng(seed)
        self.placements: list[tuple[float, float, float]] = []
        self.outcomes: list[bool] = []
        self._running = self._lifted = False
        self.create_subscription(String, "episode/events", self._on_event, qos.EVENTS)
        if rig.task.name == "pick_cube":
            self.success_pub = self.create_publisher(Bool, "twin/success", qos.SENSOR) if announce else None
            self.create_timer(SUCCESS_PERIOD_S, self._watch)

    def next_pose(self) -> tuple[float, float, float]:
        if self.rig.task.name == "reach":
            return REACH_PARKING
        ranges = self.rig.randomization
        x, y = NOMINAL_XY + self.rng.uniform(ranges.object_xy.low, ranges.object_xy.high, size=2)
        return float(x), float(y), float(self.rng.uniform(ranges.object_yaw.low, ranges.object_yaw.high))

    def _on_event(self, msg: String) -> None:
        if msg.data == "reset":
            pose = self.next_pose()
            self.lab.place_cube(*pose)
            self.placements.append(pose)
            self._running, self._lifted = True, False
        elif msg.data in ENDINGS and self._running:
            self.outcomes.append(self._lifted)
            self._running = False

    def _watch(self) -> None:
        lifted = self.lab.lifted()
        self._lifted |= lifted and self._running
        if self.success_pub is not None:
            self.success_pub.publish(Bool(data=lifted))


@contextmanager
def judging(lab: Lab, rig: RigConfig, seed: int = 0, announce: bool = True) -> Iterator[LabJudge]:
    """The judge spinning in a ROS context of its own on the rig's network, next to whatever graph drives the lab."""
    context = new_context(rig.network, "/tether/lab_judge")
    spinners = NodeSpinners(context)
    judge = LabJudge(lab, rig, seed=seed, announce=announce, context=context)
    spinners.add(judge)
    spinners.start()
    try:
        yield judge
    finally:
        spinners.shutdown()
        judge.destroy_node()
