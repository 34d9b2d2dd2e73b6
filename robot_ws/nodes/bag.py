"""Bag node: the graph's topics, as they pass, into an MCAP file that any ROS 2 bag reader opens and
`tether data convert` imports into a store (`tether record --bag`).

It subscribes to the topics import reads (`tether.datasets.mcap_io.bag_topics`: cameras and their calibration,
arm and gripper state, the commands, the teleop engagement and the episode events) without deserialising them,
and writes each message as it arrived, stamped with this node's clock (the graph's clock: sim time on a sped-up
twin), so event times and header stamps share one timeline. A bag holds the commands exactly as the arm
received them: the conventions of `tether.actions`, not the store's normalised actions.
"""

from __future__ import annotations

import importlib
import threading
from functools import partial
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from tether.config import RigConfig
from tether.datasets.mcap_io import SerializedBagWriter, bag_topics
from tether.robot_ws import qos

RELIABLE_BACKLOG = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
"""Commands, teleop engagement and episode events: reliable, with room while the file is written. Volatile: the
bag starts with the graph, and a late-joining reader's replay of the events' history would put old events at
the time they were replayed."""


def _message_class(msgtype: str) -> type:
    """`geometry_msgs/msg/TwistStamped` -> the rclpy message class."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def _profile(topic: str) -> QoSProfile:
    if topic.startswith(("cameras/", "arm/", "gripper/state")) and topic != "arm/cmd":
        return qos.SENSOR
    return RELIABLE_BACKLOG


class BagNode(Node):
    def __init__(self, rig: RigConfig, path: Path, **node_kwargs) -> None:
        super().__init__("bag", namespace=rig.namespace, **node_kwargs)
        self.path = Path(path)
        self._stream = self.path.open("wb")
        self._bag = SerializedBagWriter(self._stream)
        self._lock = threading.Lock()  # callbacks and destroy_node run on different threads
        prefix = rig.namespace.rstrip("/")
        for topic, msgtype in bag_topics([camera.name for camera in rig.cameras]).items():
            self.create_subscription(_message_class(msgtype), topic,
                                     partial(self._on_message, f"{prefix}/{topic}", msgtype), _profile(topic), raw=True)

    def _on_message(self, topic: str, msgtype: str, data: bytes) -> None:
        with self._lock:
            if not self._stream.closed:
                self._bag.write(topic, msgtype, data, self.get_clock().now().nanoseconds)

    def destroy_node(self) -> None:
        with self._lock:
            if not self._stream.closed:
                self._bag.finish()
                self._stream.close()
        super().destroy_node()
