"""An arm that already has a ROS 2 driver following MoveIt Servo style twists (`arm.backend: servo`).

Each tick turns the TCP target into a twist (proportional to the pose error, speed-limited by the
rig) and publishes it as `geometry_msgs/TwistStamped` on the rig's topic; the arm's own driver
does the rest. Its pose and joint states are read back from its topics. The backend runs its own
ROS context and executor thread, so it works the same inside the arm node or on its own.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32
from std_srvs.srv import Trigger

from tether.config import NetworkConfig, ServoArm
from tether.robot_ws.interfaces import ArmBackend, ArmState, DeviceError
from tether.robot_ws.network import init_context
from tether.safety import limit_norm

STALE_S = 0.5  # a pose older than this means the arm's driver stopped publishing
CONNECT_TIMEOUT_S = 5.0
HOME_TIMEOUT_S = 60.0


def servo_twist(
    position: np.ndarray, quat_xyzw: np.ndarray, target: np.ndarray, target_quat: np.ndarray, config: ServoArm
) -> np.ndarray:
    """The twist [vx, vy, vz, wx, wy, wz] (base frame) that closes the pose error, speed-limited."""
    linear = limit_norm(config.gain * (np.asarray(target, float) - position), config.max_linear_speed)
    error = Rotation.from_quat(target_quat) * Rotation.from_quat(quat_xyzw).inv()
    angular = limit_norm(config.gain * error.as_rotvec(), config.max_angular_speed)
    return np.concatenate([linear, angular])


def _stamp_seconds(msg: PoseStamped | JointState) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


class ServoBackend(ArmBackend):
    """Publishes twists for a MoveIt Servo style driver and reads its pose / joint states back."""

    def __init__(self, config: ServoArm, network: NetworkConfig = NetworkConfig()) -> None:
        self.config = config
        self.network = network
        self._lock = threading.Lock()
        self._pose: tuple[PoseStamped, float] | None = None  # message and wall time received
        self._joints: JointState | None = None
        self._opening = 1.0
        self._twist_pub = self._gripper_pub = self._home_client = None
        self._context: rclpy.Context | None = None
        self._node: Node | None = None
        self._executor: SingleThreadedExecutor | None = None
        self._thread: threading.Thread | None = None

    def connect(self) -> None:
        self._context = rclpy.Context()
        init_context(self._context, self.network, "/tether/arm_driver")
        self._node = Node("tether_servo_backend", context=self._context)
        reliable = QoSProfile(depth=1)
        self._twist_pub = self._node.create_publisher(TwistStamped, self.config.twist_topic, reliable)
        self._gripper_pub = (
            self._node.create_publisher(Float32, self.config.gripper_topic, reliable) if self.config.gripper_topic else None
        )
        self._home_client = (
            self._node.create_client(Trigger, self.config.home_service) if self.config.home_service else None
        )
        self._node.create_subscription(PoseStamped, self.config.pose_topic, self._on_pose, qos_profile_sensor_data)
        self._node.create_subscription(
            JointState, self.config.joint_states_topic, self._on_joints, qos_profile_sensor_data
        )
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._thread = threading.Thread(target=self._executor.spin, name="servo-backend", daemon=True)
        self._thread.start()
        # Connected once both the pose and the joint states have arrived: a state with either missing is not the arm's.
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while (self._pose is None or self._joints is None) and time.monotonic() < deadline:
            time.sleep(0.02)
        missing = [topic for topic, msg in ((self.config.pose_topic, self._pose),
                                            (self.config.joint_states_topic, self._joints)) if msg is None]
        if missing:
            self.close()
            raise DeviceError(
                f"servo arm: nothing on {' or '.join(missing)} within {CONNECT_TIMEOUT_S:g} s (is its driver running?)"
            )

    def close(self) -> None:
        if self._context is None:
            return
        if self._twist_pub is not None:
            self.hold()
        if self._executor is not None:
            self._executor.shutdown(timeout_sec=1.0)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._node is not None:
            self._node.destroy_node()
        rclpy.utilities.try_shutdown(context=self._context)
        self._context = self._node = self._executor = self._thread = self._twist_pub = None

    def _on_pose(self, msg: PoseStamped) -> None:
        with self._lock:
            self._pose = (msg, time.time())

    def _on_joints(self, msg: JointState) -> None:
        with self._lock:
            self._joints = msg

    def _current_pose(self) -> tuple[np.ndarray, np.ndarray, float]:
        with self._lock:
            pose = self._pose
        if pose is None:
            raise DeviceError(f"servo arm: no pose received on {self.config.pose_topic}")
        msg, received = pose
        age = time.time() - received
        if age > STALE_S:
            raise DeviceError(f"servo arm: pose on {self.config.pose_topic} is {age:.2f} s old (driver stopped?)")
        p, q = msg.pose.position, msg.pose.orientation
        return np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w]), _stamp_seconds(msg)

    def state(self) -> ArmState:
        position, quat, stamp = self._current_pose()
        with self._lock:
            joints = self._joints
        count = len(self.joint_names)

        def vector(values: list[float] | None) -> np.ndarray:
            out = np.zeros(count)
            if values is not None and len(values):
                out[: min(count, len(values))] = list(values)[:count]
            return out

        return ArmState(
            stamp=stamp,
            joint_positions=vector(joints.position if joints else None),
            joint_velocities=vector(joints.velocity if joints else None),
            joint_efforts=vector(joints.effort if joints else None),
            tcp_pose=np.concatenate([position, quat]),
            tcp_twist=np.zeros(6),  # the Servo interface reports no TCP velocity
            wrench=np.zeros(6),
            gripper=self._opening,
        )

    def _publish(self, twist: np.ndarray) -> None:
        msg = TwistStamped()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.header.frame_id = self.config.frame_id
        msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(v) for v in twist[:3])
        msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z = (float(v) for v in twist[3:])
        self._twist_pub.publish(msg)

    def move_toward(self, position: np.ndarray, quat_xyzw: np.ndarray) -> None:
        here, quat, _ = self._current_pose()
        self._publish(servo_twist(here, quat, position, quat_xyzw, self.config))

    def hold(self) -> None:
        self._publish(np.zeros(6))

    def set_gripper(self, command: int) -> None:
        if command not in (-1, 0, 1):
            raise ValueError(f"gripper command must be -1, 0 or +1, got {command}")
        if command == 0 or self._gripper_pub is None:
            return
        self._gripper_pub.publish(Float32(data=float(command)))
        self._opening = 0.0 if command > 0 else 1.0  # no gripper state topic: report what was asked

    def home(self, abort: threading.Event | None = None) -> None:
        if self._home_client is None:
            raise DeviceError("servo arm: no home_service in the rig, so it cannot be sent home")
        if not self._home_client.wait_for_service(timeout_sec=2.0):
            raise DeviceError(f"servo arm: home service {self.config.home_service} is not available")
        future = self._home_client.call_async(Trigger.Request())
        deadline = time.monotonic() + HOME_TIMEOUT_S
        abort = abort if abort is not None else threading.Event()
        while not future.done() and time.monotonic() < deadline:
            if abort.wait(0.02):  # the driver's home runs on: stop it by zero twists, as an e-stop holds
                self.hold()
                raise DeviceError(f"servo arm: home interrupted by e-stop (sent zero twists to {self.config.twist_topic})")
        if not future.done():
            raise DeviceError(f"servo arm: home service {self.config.home_service} did not answer in {HOME_TIMEOUT_S:g} s")
        result = future.result()
        if not result.success:
            raise DeviceError(f"servo arm: home service {self.config.home_service} failed: {result.message}")
