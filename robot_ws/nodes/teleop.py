"""Teleop node: publishes what the human (or the scripted operator) commands and says."""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from std_msgs.msg import Bool, Float32, String

from tether.config import RigConfig
from tether.robot_ws import messages, qos
from tether.teleop.device import TeleopDevice


class TeleopNode(Node):
    def __init__(self, rig: RigConfig, device: TeleopDevice, **node_kwargs) -> None:
        super().__init__("teleop", namespace=rig.namespace, **node_kwargs)
        self.rig = rig
        self.device = device
        self.cmd_pub = self.create_publisher(TwistStamped, "teleop/cmd", qos.COMMAND)
        self.gripper_pub = self.create_publisher(Float32, "teleop/gripper", qos.COMMAND)
        self.engaged_pub = self.create_publisher(Bool, "teleop/engaged", qos.COMMAND)
        self.events_pub = self.create_publisher(String, "episode/events", qos.EVENTS)
        if hasattr(device, "watch"):  # an operator that watches the policy (the scripted one)
            self.create_subscription(TwistStamped, "policy/action", self._on_proposal, qos.COMMAND)
            self.create_subscription(Float32, "policy/gripper", self._on_proposal_gripper, qos.COMMAND)
        if hasattr(device, "new_episode"):
            self.create_subscription(String, "episode/events", self._on_event, qos.EVENTS)
        self._proposal_gripper = 0.0
        # Twice the control rate, so the actor always finds a fresh command.
        self.create_timer(0.5 * rig.control_dt, self._tick)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _tick(self) -> None:
        command = self.device.poll()
        stamp = self._now()
        arm_part = command.motion[:6] if self.rig.arm.rotation_actions else command.motion[:3]
        velocity = messages.action_to_velocity(np.append(arm_part, 0.0), self.rig)
        self.cmd_pub.publish(messages.twist_msg(velocity, stamp))
        if command.gripper is not None:
            self.gripper_pub.publish(Float32(data=float(command.gripper)))
        self.engaged_pub.publish(Bool(data=bool(command.engaged)))
        for event in command.events:
            self.events_pub.publish(String(data=event))

    def _on_proposal(self, msg: TwistStamped) -> None:
        velocity = messages.twist_array(msg)
        self.device.watch(messages.velocity_to_action(velocity, self._proposal_gripper, self.rig))

    def _on_proposal_gripper(self, msg: Float32) -> None:
        self._proposal_gripper = float(msg.data)

    def _on_event(self, msg: String) -> None:
        if msg.data == "reset":
            self.device.new_episode()
