"""Camera node: publishes each camera's newest frame with its acquisition time, and its health."""

from __future__ import annotations

import threading
from collections import Counter

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from tether.config import CameraConfig, RigConfig
from tether.frames import optical_frame
from tether.robot_ws import messages, qos
from tether.robot_ws.interfaces import CameraDriver, DeviceError


class CameraNode(Node):
    """One node for all of a rig's cameras; frames arrive already cropped and resized by the driver."""

    def __init__(self, rig: RigConfig, drivers: dict[str, CameraDriver], **node_kwargs) -> None:
        super().__init__("cameras", namespace=rig.namespace, **node_kwargs)
        self.rig = rig
        self.drivers = drivers
        self.counters: Counter[str] = Counter()
        configs = {c.name: c for c in rig.cameras}
        self.cameras: dict[str, CameraConfig] = {name: configs[name] for name in drivers}
        self.image_pubs = {
            name: self.create_publisher(Image, f"cameras/{name}/image_raw", qos.SENSOR) for name in drivers
        }
        self.info_pubs = {
            name: self.create_publisher(CameraInfo, f"cameras/{name}/camera_info", qos.SENSOR) for name in drivers
        }
        self.diag_pub = self.create_publisher(DiagnosticArray, "diagnostics", qos.COMMAND)
        self.create_timer(1.0, self._publish_diagnostics)
        # One thread per camera blocks on its driver and publishes each frame the moment it lands: a timer
        # that polled at twice the frame rate aged every frame by up to half a frame period before it left.
        self._stop = threading.Event()
        self._streams = [
            threading.Thread(target=self._stream, args=(name,), name=f"camera-publish-{name}", daemon=True)
            for name in self.cameras
        ]
        for stream in self._streams:
            stream.start()

    def _stream(self, name: str) -> None:
        camera, driver = self.cameras[name], self.drivers[name]
        max_age_s = 2.0 / camera.fps + self.rig.safety.staleness_s
        sequence = -1
        while not self._stop.is_set():
            frame = driver.wait_newer(sequence, timeout_s=max_age_s)
            if frame is None:
                try:
                    driver.read(max_age_s)  # names why nothing new came (unplugged, stalled)
                except DeviceError as error:
                    self.counters[f"{name}_errors"] += 1
                    self.get_logger().error(str(error), throttle_duration_sec=2.0)
                continue
            sequence = frame.sequence
            self.image_pubs[name].publish(messages.image_msg(frame.image, frame.stamp, optical_frame(name)))
            self.info_pubs[name].publish(messages.camera_info_msg(camera, frame.stamp))
            self.counters[f"{name}_published"] += 1

    def stop(self) -> None:
        """Stop publishing frames (what an unplugged camera looks like to the graph)."""
        self._stop.set()
        for stream in self._streams:
            stream.join(timeout=5.0)

    def destroy_node(self) -> None:
        self.stop()
        super().destroy_node()

    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        for name, driver in self.drivers.items():
            fps = driver.measured_fps
            status = DiagnosticStatus(name=f"camera/{name}", hardware_id=self.cameras[name].backend)
            status.level = DiagnosticStatus.OK if fps >= 0.8 * self.cameras[name].fps else DiagnosticStatus.WARN
            status.message = f"{fps:.1f} fps of {self.cameras[name].fps:.0f}"
            status.values = [
                KeyValue(key="measured_fps", value=f"{fps:.2f}"),
                KeyValue(key="dropped_frames", value=str(driver.dropped_frames)),
                KeyValue(key="errors", value=str(self.counters[f"{name}_errors"])),
            ]
            array.status.append(status)
        self.diag_pub.publish(array)
