"""Arm node: the last line of safety between any command source and the arm.

Whatever sends `arm/cmd` (actor, teleop, a script), every command is checked here: stale or
non-finite commands are rejected, the step is speed-limited, the target stays in the
workspace box and within reach of the measured pose, the arm holds when commands stop for
longer than the watchdog period, and a latched e-stop holds it until released. Every
rejection is logged and counted.
"""

from __future__ import annotations

import threading
from collections import Counter, deque

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float32, String
from std_srvs.srv import Trigger

from tether import spaces
from tether.config import RigConfig
from tether.robot_ws import messages, qos
from tether.robot_ws.interfaces import ArmBackend, DeviceError
from tether.safety import UnsafeCommand, check_finite, rotation_target, translation_target

STATE_RATE_HZ = 50.0


class ArmNode(Node):
    """Publishes the arm's state and forwards safe targets to its backend."""

    def __init__(self, rig: RigConfig, backend: ArmBackend, **node_kwargs) -> None:
        super().__init__("arm", namespace=rig.namespace, **node_kwargs)
        self.rig = rig
        self.backend = backend
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._estopped = False
        self._holding = True
        self._last_command_time: float | None = None
        self._target: np.ndarray | None = None
        self.tracking_errors: deque[float] = deque(maxlen=100_000)
        """Distance (m) from each tick's measured TCP to the previous tick's target, while tracking."""

        commands = MutuallyExclusiveCallbackGroup()
        self.create_subscription(TwistStamped, "arm/cmd", self._on_cmd, qos.COMMAND, callback_group=commands)
        self.create_subscription(Float32, "gripper/cmd", self._on_gripper, qos.COMMAND, callback_group=commands)
        self.create_subscription(Bool, "estop", self._on_estop, qos.LATCHED, callback_group=commands)
        services = MutuallyExclusiveCallbackGroup()
        self.create_service(Trigger, "arm/reset", self._on_home, callback_group=services)
        self.create_service(Trigger, "arm/home", self._on_home, callback_group=services)

        self.joint_pub = self.create_publisher(JointState, "arm/joint_states", qos.SENSOR)
        self.pose_pub = self.create_publisher(PoseStamped, "arm/tcp_pose", qos.SENSOR)
        self.twist_pub = self.create_publisher(TwistStamped, "arm/tcp_twist", qos.SENSOR)
        self.wrench_pub = self.create_publisher(WrenchStamped, "arm/wrench", qos.SENSOR)
        self.gripper_pub = self.create_publisher(Float32, "gripper/state", qos.SENSOR)
        self.diag_pub = self.create_publisher(DiagnosticArray, "diagnostics", qos.COMMAND)
        self.events_pub = self.create_publisher(String, "episode/events", qos.EVENTS)
        timers = MutuallyExclusiveCallbackGroup()
        self.create_timer(1.0 / STATE_RATE_HZ, self._tick, callback_group=timers)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=timers)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _reject(self, reason: str, detail: str) -> None:
        self.counters[f"rejected_{reason}"] += 1
        self.get_logger().warning(f"arm/cmd rejected ({reason}): {detail}", throttle_duration_sec=1.0)

    # --- commands ---------------------------------------------------------------------

    def _on_cmd(self, msg: TwistStamped) -> None:
        now = self._now()
        age = now - messages.from_stamp(msg.header.stamp)
        if self._estopped:
            return self._reject("estop", "e-stop is engaged")
        if age > self.rig.safety.watchdog_s or age < -self.rig.safety.watchdog_s:
            return self._reject("stale", f"command is {age:.3f} s old")
        try:
            velocity = check_finite(messages.twist_array(msg), "arm/cmd")
        except UnsafeCommand as error:
            self._hold()
            return self._reject("non_finite", str(error))
        try:
            state = self.backend.state()
        except DeviceError as error:
            return self._reject("no_state", str(error))
        arm, dt = self.rig.arm, self.rig.control_dt
        measured = state.tcp_pose[:3]
        with self._lock:
            if self._target is not None and not self._holding:  # how far the arm lags the target it was given
                self.tracking_errors.append(float(np.linalg.norm(measured - self._target)))
            previous = self._target if self._target is not None and not self._holding else measured
            step = velocity[:3] * dt
            self._target = translation_target(measured, previous, step, arm.workspace, arm.max_linear_speed, dt)
            if not np.allclose(self._target, previous + step):
                self.counters["clipped"] += 1
            quat = rotation_target(state.tcp_pose[3:], velocity[3:] * dt, arm.max_angular_speed * dt)
            self._holding = False
            self._last_command_time = now
            self.counters["accepted"] += 1
        try:
            self.backend.move_toward(self._target, quat)
        except DeviceError as error:
            self._fault(error)

    def _fault(self, error: DeviceError) -> None:
        """A reflex or lost connection: count it, tell the graph the episode failed, try to recover, hold."""
        self.counters["faults"] += 1
        self.get_logger().error(f"arm fault: {error}")
        self.events_pub.publish(String(data="failure"))
        try:
            self.backend.recover()
            self.backend.hold()
        except DeviceError as recover_error:
            self.counters["recover_failed"] += 1
            self.get_logger().error(f"arm recovery failed: {recover_error}")
        with self._lock:
            self._target, self._holding = None, True

    def _on_gripper(self, msg: Float32) -> None:
        if self._estopped:
            return self._reject("estop", "e-stop is engaged (gripper)")
        value = float(msg.data)
        if not np.isfinite(value):
            return self._reject("non_finite", f"gripper/cmd {value}")
        command = spaces.gripper_command(value)
        if command:
            try:
                self.backend.set_gripper(command)
            except DeviceError as error:
                self._fault(error)

    def _on_estop(self, msg: Bool) -> None:
        if msg.data and not self._estopped:
            self.get_logger().error("e-stop engaged: holding until released")
            self.counters["estop"] += 1
            self._hold()
        elif not msg.data and self._estopped:
            self.get_logger().warning("e-stop released")
        self._estopped = bool(msg.data)

    def _on_home(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self._estopped:
            response.success, response.message = False, "e-stop is engaged"
            return response
        try:
            self.backend.home()
        except DeviceError as error:
            response.success, response.message = False, str(error)
            return response
        with self._lock:
            self._target, self._holding = None, True
        response.success, response.message = True, "homed"
        return response

    def _hold(self) -> None:
        with self._lock:
            self._holding = True
            self._target = None
        self.backend.hold()

    # --- state and watchdog -----------------------------------------------------------

    def _tick(self) -> None:
        now = self._now()
        if not self._holding and self._last_command_time is not None:
            if now - self._last_command_time > self.rig.safety.watchdog_s:
                self.counters["watchdog_hold"] += 1
                self.get_logger().warning("no command within the watchdog period: holding")
                self._hold()
        try:
            state = self.backend.state()
        except DeviceError as error:
            self.counters["state_errors"] += 1
            self.get_logger().error(str(error), throttle_duration_sec=1.0)
            return
        stamp = state.stamp
        self.joint_pub.publish(
            messages.joint_state_msg(
                self.backend.joint_names, state.joint_positions, state.joint_velocities, state.joint_efforts, stamp
            )
        )
        self.pose_pub.publish(messages.pose_msg(state.tcp_pose, stamp))
        self.twist_pub.publish(messages.twist_msg(state.tcp_twist, stamp))
        self.wrench_pub.publish(messages.wrench_msg(state.wrench, stamp))
        self.gripper_pub.publish(Float32(data=float(state.gripper)))

    def _publish_diagnostics(self) -> None:
        status = DiagnosticStatus(name="arm", hardware_id=self.rig.arm.backend)
        status.level = DiagnosticStatus.ERROR if self._estopped else DiagnosticStatus.OK
        status.message = "e-stop engaged" if self._estopped else ("holding" if self._holding else "tracking")
        status.values = [KeyValue(key=k, value=str(v)) for k, v in sorted(self.counters.items())]
        array = DiagnosticArray(status=[status])
        array.header.stamp = messages.to_stamp(self._now())
        self.diag_pub.publish(array)
