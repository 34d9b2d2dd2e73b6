"""Arm node: the last line of safety between any command source and the arm.

Whatever sends `arm/cmd` (actor, teleop, a script), every command is checked here: stale or
non-finite commands are rejected; commands go through one `SetpointFilter`, so the setpoint
sent to the backend moves at most one control period's worth of the speed limits per period
however fast commands arrive (faster ones are merged, the latest winning), stays in the
workspace box and within reach of the measured pose; rotations are ignored when the rig has
none; the arm holds when commands stop for longer than the watchdog period. Every rejection is
logged and counted.

E-stop always wins. It is served by a companion node (`arm_estop`) that spins on an executor
thread of its own, so no home, reset or slow backend call of this node delays it. It latches
before anything else runs, interrupts a home in flight, clears every setpoint and pending
command, then holds the arm; if the hold fails the e-stop stays latched and the error shows in
the log and diagnostics. Nothing moves arm or gripper until an explicit release, and a release
replays nothing: the next command starts from the measured pose.
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
from tether.safety import MotionLimits, Setpoint, SetpointFilter, UnsafeCommand

STATE_RATE_HZ = 50.0
PENDING_CHECKS_PER_PERIOD = 20
"""How often per control period a command held back by the rate limit is looked at (its added delay)."""


class ArmNode(Node):
    """Publishes the arm's state and forwards safe setpoints to its backend."""

    def __init__(self, rig: RigConfig, backend: ArmBackend, **node_kwargs) -> None:
        super().__init__("arm", namespace=rig.namespace, **node_kwargs)
        self.rig = rig
        self.backend = backend
        self.counters: Counter[str] = Counter()
        self._motion = threading.Lock()  # one motion call to the backend at a time, and none after an e-stop
        self._filter = SetpointFilter(MotionLimits.of(rig))
        self._estopped = False
        self._estop_error: str | None = None
        self._abort_home = threading.Event()
        self._holding = True
        self._last_command_time: float | None = None
        self.tracking_errors: deque[float] = deque(maxlen=100_000)
        """Distance (m) from the measured TCP to the previous setpoint, at each new setpoint while tracking."""

        # The e-stop: its own node, hence its own executor thread (robot_ws/spinning.py spins `companions`).
        self.estop_node = Node("arm_estop", namespace=rig.namespace, **node_kwargs)
        self.estop_node.create_subscription(
            Bool, "estop", self._on_estop, qos.LATCHED, callback_group=MutuallyExclusiveCallbackGroup()
        )
        self.companions: tuple[Node, ...] = (self.estop_node,)

        commands = MutuallyExclusiveCallbackGroup()
        self.create_subscription(TwistStamped, "arm/cmd", self._on_cmd, qos.COMMAND, callback_group=commands)
        self.create_subscription(Float32, "gripper/cmd", self._on_gripper, qos.COMMAND, callback_group=commands)
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
        self.create_timer(
            max(rig.control_dt / PENDING_CHECKS_PER_PERIOD, 1e-3), self._apply_pending,
            callback_group=MutuallyExclusiveCallbackGroup(),
        )

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _reject(self, reason: str, detail: str) -> None:
        self.counters[f"rejected_{reason}"] += 1
        self.get_logger().warning(f"arm/cmd rejected ({reason}): {detail}", throttle_duration_sec=1.0)

    @property
    def estopped(self) -> bool:
        return self._estopped

    # --- commands ---------------------------------------------------------------------

    def _on_cmd(self, msg: TwistStamped) -> None:
        now = self._now()
        if self._estopped:
            return self._reject("estop", "e-stop is engaged")
        age = now - messages.from_stamp(msg.header.stamp)
        if age > self.rig.safety.watchdog_s or age < -self.rig.safety.watchdog_s:
            return self._reject("stale", f"command is {age:.3f} s old")
        try:
            with self._motion:
                self._filter.offer(messages.twist_array(msg))
                self._last_command_time = now
        except UnsafeCommand as error:
            self._hold()
            return self._reject("non_finite", str(error))
        self.counters["accepted"] += 1
        self._apply_pending()

    def _apply_pending(self) -> None:
        """Send the pending command's setpoint if a control period has passed since the last one."""
        now = self._now()
        with self._motion:
            if self._estopped or not self._filter.due(now):
                return
            try:
                state = self.backend.state()
            except DeviceError as error:
                self._filter.reset()
                return self._reject("no_state", str(error))
            measured = Setpoint.of_pose(state.tcp_pose)
            previous = self._filter.setpoint
            if previous is not None:  # how far the arm lags the setpoint it was given
                self.tracking_errors.append(float(np.linalg.norm(measured.position - previous.position)))
            wanted = self._filter.pending[:3] * self.rig.control_dt
            setpoint = self._filter.apply(measured, now)
            start = previous.position if previous is not None else measured.position
            if not np.allclose(setpoint.position - start, wanted):
                self.counters["clipped"] += 1
            self.counters["applied"] += 1
            self.counters["merged"] = self._filter.merged
            self._holding = False
            try:
                self.backend.move_toward(setpoint.position, setpoint.quat_xyzw)
            except DeviceError as error:
                self._filter.reset()
                fault = error
            else:
                return
        self._fault(fault)

    def _fault(self, error: DeviceError) -> None:
        """A reflex or lost connection: count it, tell the graph the episode failed, try to recover, hold."""
        self.counters["faults"] += 1
        self.get_logger().error(f"arm fault: {error}")
        self.events_pub.publish(String(data="failure"))
        try:
            with self._motion:
                self._filter.reset()
                self._holding = True
                self.backend.recover()
                self.backend.hold()
        except DeviceError as recover_error:
            self.counters["recover_failed"] += 1
            self.get_logger().error(f"arm recovery failed: {recover_error}")

    def _on_gripper(self, msg: Float32) -> None:
        value = float(msg.data)
        if not np.isfinite(value):
            return self._reject("non_finite", f"gripper/cmd {value}")
        command = spaces.gripper_command(value)
        if not command:
            return
        with self._motion:
            if self._estopped:
                return self._reject("estop", "e-stop is engaged (gripper)")
            try:
                self.backend.set_gripper(command)
            except DeviceError as error:
                fault = error
            else:
                return
        self._fault(fault)

    # --- e-stop, home, hold -------------------------------------------------------------

    def _on_estop(self, msg: Bool) -> None:
        """Runs on the e-stop node's own thread."""
        if msg.data:
            was_engaged, self._estopped = self._estopped, True  # first: every motion path checks it under the motion lock
            self._abort_home.set()
            if not was_engaged:
                self.counters["estop"] += 1
                self.get_logger().error("e-stop engaged: holding until released")
            try:
                self._hold()
                self._estop_error = None
            except Exception as error:  # noqa: BLE001 - whatever the backend raises, the e-stop stays latched
                self._estop_error = f"{type(error).__name__}: {error}"
                self.counters["estop_hold_failed"] += 1
                self.get_logger().error(f"e-stop engaged but the arm's hold failed: {self._estop_error}")
        elif self._estopped:
            with self._motion:  # a release replays nothing: no setpoint or pending command survives
                self._filter.reset()
                self._estopped = False
            self.counters["estop_released"] += 1
            self.get_logger().warning("e-stop released")

    def _on_home(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._abort_home.clear()  # before the check: an e-stop from here on interrupts this home
        if self._estopped:
            response.success, response.message = False, "e-stop is engaged"
            return response
        with self._motion:
            self._filter.reset()
            self._holding = True
        try:
            self.backend.home(self._abort_home)
        except DeviceError as error:
            response.success, response.message = False, str(error)
            return response
        with self._motion:
            self._filter.reset()
        if self._estopped:  # the e-stop came as the home finished: hold where it ended
            response.success, response.message = False, "e-stop engaged during the home"
            return response
        response.success, response.message = True, "homed"
        return response

    def _hold(self) -> None:
        with self._motion:
            self._filter.reset()
            self._holding = True
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
        if self._estopped:
            status.level = DiagnosticStatus.ERROR
            status.message = "e-stop engaged" + (f"; hold failed: {self._estop_error}" if self._estop_error else "")
        else:
            status.level = DiagnosticStatus.OK
            status.message = "holding" if self._holding else "tracking"
        status.values = [KeyValue(key=k, value=str(v)) for k, v in sorted(self.counters.items())]
        array = DiagnosticArray(status=[status])
        array.header.stamp = messages.to_stamp(self._now())
        self.diag_pub.publish(array)

    def destroy_node(self) -> None:
        self.estop_node.destroy_node()
        super().destroy_node()
