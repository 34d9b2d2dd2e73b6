"""The MoveIt Servo style backend over real ROS 2 topics. MoveIt Servo and an arm cannot run here,
so a small node stands in for the arm's own driver: it integrates the twists it receives into the
pose it publishes, and offers the home service."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32
from std_srvs.srv import Trigger

from tether.config import RigConfig, ServoArm
from tether.robot_ws.arm_servo import servo_twist
from tether.robot_ws.drivers import make_arm
from tether.robot_ws.interfaces import DeviceError

START = np.array([0.5, 0.0, 0.3])
DOWN = np.array([1.0, 0.0, 0.0, 0.0])


def servo_rig(suffix: str) -> RigConfig:
    arm = ServoArm(
        twist_topic=f"/t{suffix}/delta_twist_cmds",
        pose_topic=f"/t{suffix}/tcp_pose",
        joint_states_topic=f"/t{suffix}/joint_states",
        gripper_topic=f"/t{suffix}/gripper",
        home_service=f"/t{suffix}/home",
        frame_id="panda_link0",
    )
    return RigConfig(name="servo_test", arm=arm)


class FakeServoDriver:
    """Stands in for MoveIt Servo + the arm: pose += twist * dt at 100 Hz."""

    def __init__(self, arm: ServoArm) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node("fake_servo_driver", context=self.context)
        self.position, self.twist, self.gripper, self.frames = START.copy(), np.zeros(6), [], set()
        self.node.create_subscription(TwistStamped, arm.twist_topic, self._on_twist, QoSProfile(depth=1))
        self.node.create_subscription(Float32, arm.gripper_topic, lambda m: self.gripper.append(m.data), QoSProfile(depth=1))
        self.node.create_service(Trigger, arm.home_service, self._home)
        self.pose_pub = self.node.create_publisher(PoseStamped, arm.pose_topic, qos_profile_sensor_data)
        self.joint_pub = self.node.create_publisher(JointState, arm.joint_states_topic, qos_profile_sensor_data)
        self.node.create_timer(0.01, self._tick)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_twist(self, msg: TwistStamped) -> None:
        self.frames.add(msg.header.frame_id)
        self.twist = np.array([msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z, 0, 0, 0])

    def _home(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.position = START.copy()
        response.success = True
        return response

    def _tick(self) -> None:
        self.position = self.position + self.twist[:3] * 0.01
        pose = PoseStamped()
        pose.header.stamp = self.node.get_clock().now().to_msg()
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = self.position.tolist()
        pose.pose.orientation.x, pose.pose.orientation.w = 1.0, 0.0
        self.pose_pub.publish(pose)
        joints = JointState(name=[f"joint{i}" for i in range(1, 8)], position=[0.1] * 7)
        joints.header.stamp = pose.header.stamp
        self.joint_pub.publish(joints)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.utilities.try_shutdown(context=self.context)


@pytest.fixture
def rig() -> RigConfig:
    return servo_rig(str(time.monotonic_ns()))


@pytest.fixture
def driver(rig: RigConfig) -> Iterator[FakeServoDriver]:
    fake = FakeServoDriver(rig.arm)
    yield fake
    fake.close()


def test_servo_backend_steers_the_arm_with_twists(rig: RigConfig, driver: FakeServoDriver):
    target = START + np.array([0.05, -0.03, 0.02])
    with make_arm(rig) as arm:
        state = arm.state()
        np.testing.assert_allclose(state.tcp_pose, np.concatenate([START, DOWN]), atol=0.01)
        np.testing.assert_allclose(state.joint_positions, [0.1] * 7)
        deadline = time.monotonic() + 20
        while np.linalg.norm(arm.state().tcp_pose[:3] - target) > 0.003:
            assert time.monotonic() < deadline, "the arm did not reach the target"
            arm.move_toward(target, DOWN)
            time.sleep(0.05)
        arm.hold()
        deadline = time.monotonic() + 10
        while np.any(driver.twist):
            assert time.monotonic() < deadline, "hold did not stop the arm"
            time.sleep(0.02)
        assert driver.frames == {"panda_link0"}
        arm.set_gripper(+1)
        deadline = time.monotonic() + 10
        while not driver.gripper:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert driver.gripper == [1.0] and arm.state().gripper == 0.0
        arm.home()
        assert np.linalg.norm(driver.position - START) < 0.01


def test_servo_twist_is_proportional_and_speed_limited():
    config = ServoArm(gain=2.0, max_linear_speed=0.1, max_angular_speed=0.5)
    here = np.zeros(3)
    small = servo_twist(here, DOWN, np.array([0.01, 0, 0]), DOWN, config)
    np.testing.assert_allclose(small, [0.02, 0, 0, 0, 0, 0], atol=1e-9)
    large = servo_twist(here, DOWN, np.array([1.0, 1.0, 0]), DOWN, config)
    assert np.linalg.norm(large[:3]) == pytest.approx(0.1)
    turn = servo_twist(here, np.array([0.0, 0.0, 0.0, 1.0]), here, np.array([0.0, 0.0, np.sin(0.05), np.cos(0.05)]), config)
    np.testing.assert_allclose(turn[3:], [0, 0, 0.2], atol=1e-9)  # 0.1 rad about z, gain 2


def test_servo_backend_without_a_driver_is_one_line(rig: RigConfig):
    with pytest.raises(DeviceError, match=r"^servo arm: nothing on /t\d+/tcp_pose or /t\d+/joint_states within 5 s "
                                          r"\(is its driver running\?\)$"):
        make_arm(rig).connect()
