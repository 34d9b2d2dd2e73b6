"""The mirror node follows a real arm's published joint states and publishes renders of its calibrated
cameras under its own namespace. The "real arm" is a test publisher (a Franka rig's topics with no
robot behind them: the node only listens)."""

import numpy as np
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float32, Float32MultiArray

from tether.config import CameraPose, load_rig
from tether.robot_ws import messages, qos
from tether.robot_ws.nodes.mirror import MirrorNode


def calibrated_franka_rig():
    """franka_realsense with its front camera calibrated (a pose); the wrist camera stays uncalibrated."""
    rig = load_rig("franka_realsense")
    pose = CameraPose(mount="world", pos=(1.2, 0.0, 0.7), lookat=(0.35, 0.0, 0.3), fovy_deg=50.0)
    front = rig.cameras[0].model_copy(update={"pose": pose})
    return rig.model_copy(update={"cameras": [front, rig.cameras[1]]})


def test_mirror_follows_joint_states_and_publishes_its_renders(ros, wait_for):
    rig = calibrated_franka_rig()
    mirror = ros.add(MirrorNode(rig, context=ros.context))
    assert list(mirror.cameras) == ["front"]  # the uncalibrated wrist camera cannot be rendered
    real = ros.node("real_arm", rig.namespace)
    joints_pub = real.create_publisher(JointState, "arm/joint_states", qos.SENSOR)
    gripper_pub = real.create_publisher(Float32, "gripper/state", qos.SENSOR)
    received: dict[str, list] = {"image": [], "real_image": [], "state": [], "success": []}
    real.create_subscription(Image, "mirror/cameras/front/image_raw", received["image"].append, qos.SENSOR)
    real.create_subscription(Image, "cameras/front/image_raw", received["real_image"].append, qos.SENSOR)
    real.create_subscription(Float32MultiArray, "mirror/task_state", received["state"].append, qos.SENSOR)
    real.create_subscription(Bool, "mirror/success", received["success"].append, qos.SENSOR)
    ros.start()

    home = np.array(rig.arm.home_joints)
    poses = [home, home + np.array([0.3, 0.2, -0.1, 0.25, 0.0, -0.2, 0.4])]
    images = []
    for target in poses:
        stamp = real.get_clock().now().nanoseconds * 1e-9
        msg = messages.joint_state_msg(tuple(f"fr3_joint{i}" for i in range(1, 8)), target, np.zeros(7), np.zeros(7), stamp)

        def followed() -> bool:
            joints_pub.publish(msg)
            gripper_pub.publish(Float32(data=0.25))
            qpos = mirror.mirror.sim.data.qpos[mirror.mirror.sim.controller.qpos_index]
            return np.allclose(qpos, target, atol=1e-9) and any(
                messages.from_stamp(m.header.stamp) == messages.from_stamp(msg.header.stamp) for m in received["image"]
            )

        assert wait_for(followed, timeout_s=20.0)
        assert abs(mirror.mirror.sim.gripper_opening() - 0.25) < 1e-6
        image = next(m for m in reversed(received["image"]) if m.header.stamp == msg.header.stamp)
        images.append(messages.image_array(image).astype(int))
    assert images[0].shape == (128, 128, 3)  # the rig's output size: what a policy would see
    assert np.abs(images[0] - images[1]).mean() > 1.0  # the arm moved in the render
    assert received["state"] and len(messages.task_state_from_msg(received["state"][-1])["cube_pos"]) == 3
    assert received["success"] and not received["success"][-1].data
    assert not received["real_image"]  # the renders never appear on the real camera's topic


def test_as_the_judge_of_a_rig_with_no_twin_the_mirror_publishes_the_task_topics(ros, wait_for):
    """A state policy on a real rig reads the object poses the mirror places on `twin/task_state`."""
    rig = calibrated_franka_rig()
    mirror = ros.add(MirrorNode(rig, judge=True, context=ros.context))
    real = ros.node("real_arm", rig.namespace)
    joints_pub = real.create_publisher(JointState, "arm/joint_states", qos.SENSOR)
    received: dict[str, list] = {"state": [], "success": [], "mirror_state": []}
    real.create_subscription(Float32MultiArray, "twin/task_state", received["state"].append, qos.SENSOR)
    real.create_subscription(Bool, "twin/success", received["success"].append, qos.SENSOR)
    real.create_subscription(Float32MultiArray, "mirror/task_state", received["mirror_state"].append, qos.SENSOR)
    ros.start()
    home = np.array(rig.arm.home_joints)

    def judged() -> bool:
        stamp = real.get_clock().now().nanoseconds * 1e-9
        joints_pub.publish(messages.joint_state_msg(tuple(f"fr3_joint{i}" for i in range(1, 8)), home, np.zeros(7), np.zeros(7), stamp))
        return bool(received["state"]) and bool(received["success"])

    assert wait_for(judged, timeout_s=20.0)
    assert set(messages.task_state_from_msg(received["state"][-1])) == {"cube_pos", "cube_quat"}
    assert not received["mirror_state"]  # one task view, on the topics the actor reads
    assert not mirror.mirror.sim.renders  # nobody watches its cameras, so it renders nothing
