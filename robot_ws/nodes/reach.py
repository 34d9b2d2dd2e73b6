"""Reach node: the `reach` task on a rig with no twin, judged from the arm's measured state.

At every episode reset it draws a target in the workspace box (as the twin's reach task does)
and publishes it, with the success flag (TCP within the task's tolerance of the target), on the
topics the twin node uses for task state and success (`twin/task_state`, `twin/success`), so the
actor runs a reach policy on a real arm exactly as in the twin. It publishes the target alone, as the
twin task does: the goal-relative feature (target minus TCP) is the policy's, from the target and the TCP
of the same observation, never from a TCP this node read at another moment.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from std_msgs.msg import Bool, Float32MultiArray, String

from tether.config import RigConfig
from tether.robot_ws import messages, qos
from tether.sim2real.twin.tasks import Reach, sample_reach_target

STATE_PERIOD_S = 0.02


class ReachNode(Node):
    def __init__(self, rig: RigConfig, *, seed: int = 0, **node_kwargs) -> None:
        if rig.task.name != Reach.name:
            raise ValueError(f"rig '{rig.name}': the reach node judges task 'reach', not '{rig.task.name}'")
        super().__init__("reach", namespace=rig.namespace, **node_kwargs)
        self.rig = rig
        self.rng = np.random.default_rng(seed)
        self.target = sample_reach_target(rig.arm.workspace, self.rng)
        self.targets_drawn = 1
        self._tcp: np.ndarray | None = None
        self.create_subscription(PoseStamped, "arm/tcp_pose", self._on_pose, qos.SENSOR)
        self.create_subscription(String, "episode/events", self._on_event, qos.EVENTS)
        self.state_pub = self.create_publisher(Float32MultiArray, "twin/task_state", qos.SENSOR)
        self.success_pub = self.create_publisher(Bool, "twin/success", qos.SENSOR)
        self.create_timer(STATE_PERIOD_S, self._publish)

    def _on_pose(self, msg: PoseStamped) -> None:
        self._tcp = messages.pose_array(msg)[:3]

    def _on_event(self, msg: String) -> None:
        if msg.data == "reset":
            self.target = sample_reach_target(self.rig.arm.workspace, self.rng)
            self.targets_drawn += 1

    def distance(self) -> float | None:
        return None if self._tcp is None else float(np.linalg.norm(self._tcp - self.target))

    def _publish(self) -> None:
        self.state_pub.publish(messages.task_state_msg({"target_pos": self.target.astype(np.float32)}))
        distance = self.distance()
        self.success_pub.publish(Bool(data=distance is not None and distance <= Reach.tolerance))
