"""Camera node: publishes each camera's newest frame with its acquisition time, and its health."""

from __future__ import annotations

from collections import Counter

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from tether.config import CameraConfig, RigConfig
from tether.robot_ws import messages, qos
from tether.robot_ws.interfaces import CameraDriver, DeviceError


class CameraNode(Node):
    """One node for all of a rig's cameras; frames arrive already cropped and resized by the driver."""

    def __init__(self, rig: RigConfig, drivers: dict[str, CameraDriver], **node_kwargs) -> None:
        super().__init__("cameras", namespace=rig.namespace, **node_kwargs)
        self.rig = rig
        self.drivers = drivers
        self.counters: Counter[str] = Counter()
        self._last_sequence: dict[str, int] = {}
        configs = {c.name: c for c in rig.cameras}
        self.cameras: dict[str, CameraConfig] = {name: configs[name] for name in drivers}
        self.image_pubs = {
            name: self.create_publisher(Image, f"cameras/{name}/image_raw", qos.SENSOR) for name in drivers
        }
        self.info_pubs = {
            name: self.create_publisher(CameraInfo, f"cameras/{name}/camera_info", qos.SENSOR) for name in drivers
        }
        self.diag_pub = self.create_publisher(DiagnosticArray, "diagnostics", qos.COMMAND)
        for name, camera in self.cameras.items():
            # Poll at twice the camera rate so a frame is published soon after it arrives.
            self.create_timer(0.5 / camera.fps, lambda name=name: self._publish(name))
        self.create_timer(1.0, self._publish_diagnostics)

    def _publish(self, name: str) -> None:
        camera = self.cameras[name]
        try:
            frame = self.drivers[name].read(max_age_s=2.0 / camera.fps + self.rig.safety.staleness_s)
        except DeviceError as error:
            self.counters[f"{name}_errors"] += 1
            self.get_logger().error(str(error), throttle_duration_sec=2.0)
            return
        if self._last_sequence.get(name) == frame.sequence:
            return
        self._last_sequence[name] = frame.sequence
        self.image_pubs[name].publish(messages.image_msg(frame.image, frame.stamp, name))
        self.info_pubs[name].publish(messages.camera_info_msg(camera, frame.stamp))
        self.counters[f"{name}_published"] += 1

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
