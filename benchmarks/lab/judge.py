"""The lab's judge: the person at a real rig who puts the cube back and says whether the pick worked.

Behind tether's judge node (robot_ws/nodes/judge.py), a part of the benchmark: at every `episode/events` "reset" (sent once the arm is
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

from benchmarks.lab.lab import Lab
from tether.config import RigConfig
from tether.robot_ws.network import new_context
from tether.robot_ws.nodes.judge import JudgeNode
from tether.robot_ws.spinning import NodeSpinners
from tether.sim2real.twin.tasks import Task

ENDINGS = ("success", "failure", "timeout")  # the actor's outcome events that end an episode
REACH_PARKING = (0.3, 0.45, 0.0)  # outside reach's workspace box, so a reach target never meets it


class LabJudge:
    """What the person at the rig does and sees; `judging` runs it behind tether's judge node."""

    def __init__(self, lab: Lab, rig: RigConfig, *, seed: int = 0) -> None:
        self.lab, self.rig = lab, rig
        self.rng = np.random.default_rng(seed)
        self.placements: list[tuple[float, float, float]] = []
        self.outcomes: list[bool] = []
        self._running = self._lifted = False

    def next_pose(self) -> tuple[float, float, float]:
        if self.rig.task.name == "reach":
            return REACH_PARKING
        ranges = self.rig.randomization
        x, y = Task.nominal_xy + self.rng.uniform(ranges.object_xy.low, ranges.object_xy.high, size=2)
        return float(x), float(y), float(self.rng.uniform(ranges.object_yaw.low, ranges.object_yaw.high))

    def on_event(self, name: str) -> None:
        if name == "reset":
            pose = self.next_pose()
            self.lab.place_cube(*pose)
            self.placements.append(pose)
            self._running, self._lifted = True, False
        elif name in ENDINGS and self._running:
            self.outcomes.append(self._lifted)
            self._running = False

    def watch(self) -> bool:
        """Whether the cube is up now; an episode that saw it up counts as a success whoever ended it."""
        lifted = self.lab.lifted()
        self._lifted |= lifted and self._running
        return lifted


@contextmanager
def judging(lab: Lab, rig: RigConfig, seed: int = 0, announce: bool = True) -> Iterator[LabJudge]:
    """The judge spinning in a ROS context of its own on the rig's network, next to whatever graph drives the lab."""
    judge = LabJudge(lab, rig, seed=seed)
    context = new_context(rig.network, "/tether/lab_judge")
    spinners = NodeSpinners(context)
    watch = judge.watch if rig.task.name == "pick_cube" else None
    node = JudgeNode(rig, judge.on_event, watch, announce=announce, name="lab_judge", context=context)
    spinners.add(node)
    spinners.start()
    try:
        yield judge
    finally:
        spinners.shutdown()
        node.destroy_node()
