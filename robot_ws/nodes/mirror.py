"""Mirror node: the live twin of a real robot (real-to-sim sync).

At the control rate it sets the twin's arm to the latest measured joint angles and finger
opening (`arm/joint_states`, `gripper/state`), places the bodies that carry markers where the
rig's detect camera sees them (`cameras/<detect_camera>/image_raw`), renders every calibrated
camera from its pose and publishes the renders under the mirror's own namespace
(`mirror/cameras/<name>/image_raw`, `camera_info`) so they never clash with the real cameras.
It also publishes the twin's view of the task (`mirror/task_state`, `mirror/success`). As the task
judge of a rig with no twin (`judge`), it publishes that view on the graph's task topics instead
(`twin/task_state`, `twin/success`, as the reach node does): the object poses it places from
markers are then what a state policy observes on the real robot.

The work runs on a thread of its own rather than an executor timer: a GL context belongs to the
thread that made it, and the executor may run a timer on any of its threads.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float32, Float32MultiArray

from tether.config import RigConfig
from tether.frames import optical_frame
from tether.robot_ws import messages, qos
from tether.sim2real.mirror import MirrorTwin


@dataclass
class _Sample:
    value: object
    stamp: float
    sequence: int


class MirrorNode(Node):
    def __init__(self, rig: RigConfig, *, task: str | None = None, judge: bool = False, **node_kwargs) -> None:
        super().__init__("mirror", namespace=rig.namespace, **node_kwargs)
        self.rig = rig
        self.mirror = MirrorTwin(rig, task)  # compiled here so a bad rig fails at start; renders on the thread
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._latest: dict[str, _Sample] = {}
        self._sequence = 0
        self.create_subscription(JointState, "arm/joint_states", lambda m: self._store("joints", m), qos.SENSOR)
        self.create_subscription(Float32, "gripper/state", lambda m: self._store("gripper", m), qos.SENSOR)
        if self.mirror.detect_camera is not None:
            self.create_subscription(
                Image, f"cameras/{self.mirror.detect_camera}/image_raw", lambda m: self._store("image", m), qos.SENSOR
            )
        prefix = rig.mirror.namespace
        self.cameras = {c.name: c for c in self.mirror.sim.cameras}
        self.image_pubs = {n: self.create_publisher(Image, f"{prefix}/cameras/{n}/image_raw", qos.SENSOR) for n in self.cameras}
        self.info_pubs = {n: self.create_publisher(CameraInfo, f"{prefix}/cameras/{n}/camera_info", qos.SENSOR) for n in self.cameras}
        task_topics = "twin" if judge else prefix
        self.state_pub = self.create_publisher(Float32MultiArray, f"{task_topics}/task_state", qos.SENSOR)
        self.success_pub = self.create_publisher(Bool, f"{task_topics}/success", qos.SENSOR)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mirror", daemon=True)
        self._thread.start()

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _store(self, key: str, msg: object) -> None:
        header = getattr(msg, "header", None)
        stamp = messages.from_stamp(header.stamp) if header is not None else self._now()
        with self._lock:
            self._sequence += 1
            self._latest[key] = _Sample(msg, stamp, self._sequence)

    def _run(self) -> None:
        period = self.rig.control_dt
        next_step = time.monotonic()
        try:
            while not self._stop.is_set() and self.context.ok():
                try:
                    self.step()
                except Exception:
                    if not self.context.ok():  # the graph shut ROS down before stopping this thread
                        break
                    raise
                next_step += period
                delay = next_step - time.monotonic()
                if delay < 0:  # fell behind: start afresh rather than catch up in a burst
                    next_step, delay = time.monotonic(), 0.0
                self._stop.wait(delay)
        finally:
            self.mirror.close()  # on this thread: the GL context belongs to it

    def step(self) -> None:
        """Follow the newest joint state, place seen markers, render and publish once."""
        with self._lock:
            joints, gripper, image = (self._latest.get(k) for k in ("joints", "gripper", "image"))
            if image is not None:
                self._latest.pop("image")  # each camera frame is searched once
        if joints is None:
            self.counters["waiting_for_joints"] += 1
            return
        self.mirror.follow(np.asarray(joints.value.position), None if gripper is None else float(gripper.value.data))
        if image is not None:
            seen = self.mirror.place_from_image(messages.image_array(image.value))
            self.counters["markers_seen"] += len(seen)
        stamp = joints.stamp  # the renders show the arm as it was measured then
        # Renders cost ~30 ms a camera on a CPU: only the ones somebody listens to (the task view is always wanted).
        watched = [n for n in self.cameras if self.image_pubs[n].get_subscription_count() > 0]
        for name, picture in (self.mirror.render(watched) if watched else {}).items():
            self.image_pubs[name].publish(messages.image_msg(picture, stamp, optical_frame(name)))
            self.info_pubs[name].publish(messages.camera_info_msg(self.cameras[name], stamp))
        self.state_pub.publish(messages.task_state_msg(self.mirror.task_state()))
        self.success_pub.publish(Bool(data=bool(self.mirror.score().success)))
        self.counters["steps"] += 1

    def destroy_node(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        super().destroy_node()
