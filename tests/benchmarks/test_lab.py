"""The franky-sim lab: real franky-sim, real pyrealsense2 software devices, tether's real RealSense driver."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import rclpy
import rclpy.executors
from scipy.spatial.transform import Rotation
from std_msgs.msg import Bool, String

os.environ.setdefault("MUJOCO_GL", "egl")

from benchmarks.lab.gaps import Gaps  # noqa: E402
from benchmarks.lab.judge import judging  # noqa: E402
from benchmarks.lab.lab import Lab  # noqa: E402
from benchmarks.lab.scene import ARM_JOINTS, CUBE_BODY, CUBE_HALF, HAND_BODY, MARKER_DICTIONARY, MARKER_SIZE_M, TOP_MARKER  # noqa: E402
from benchmarks.lab.server import delay_torques  # noqa: E402
from tether.config import CameraConfig, load_rig  # noqa: E402
from tether.robot_ws import qos  # noqa: E402
from tether.robot_ws.camera_realsense import RealSenseCamera, find_device  # noqa: E402
from tether.robot_ws.drivers import make_arm  # noqa: E402
from tether.robot_ws.franky_server import NO_REALTIME  # noqa: E402
from tether.robot_ws.interfaces import DeviceError  # noqa: E402
from tether.robot_ws.realsense_software import SoftwareRealSense  # noqa: E402
from tether.safety import translation_target  # noqa: E402
from tether.sim2real.markers import MarkerDetector, camera_matrix, image_intrinsics  # noqa: E402
from tether.sim2real.twin.tasks import Task  # noqa: E402
from tether.transforms import CV_TO_MUJOCO, lookat_quat_xyzw  # noqa: E402

FRESH = 1.0


def wait_until(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def camera_to_world(pose) -> tuple[np.ndarray, np.ndarray]:
    """The rig's calibrated camera pose as (rotation of the OpenCV camera frame, position) in the world."""
    rotation = Rotation.from_quat(lookat_quat_xyzw(np.array(pose.pos), np.array(pose.lookat), np.array([0.0, 0.0, 1.0])))
    return rotation.as_matrix() @ CV_TO_MUJOCO, np.array(pose.pos)


def top_marker_corners(position: np.ndarray, quat_xyzw: np.ndarray) -> np.ndarray:
    """World corners of the top marker in OpenCV's order (top-left, top-right, bottom-right, bottom-left)."""
    h = MARKER_SIZE_M / 2
    local = np.array([[-h, h, CUBE_HALF], [h, h, CUBE_HALF], [h, -h, CUBE_HALF], [-h, -h, CUBE_HALF]])
    return position + local @ Rotation.from_quat(quat_xyzw).as_matrix().T


class Probe:
    """A node of the test's own: publishes episode events, collects twin/success."""

    def __init__(self, namespace: str) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("probe", namespace=namespace, context=self.context)
        self.events = self.node.create_publisher(String, "episode/events", qos.EVENTS)
        self.successes: list[bool] = []
        self.node.create_subscription(Bool, "twin/success", lambda m: self.successes.append(m.data), qos.SENSOR)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def until(self, condition, timeout_s: float = 10.0) -> bool:
        return wait_until(lambda: (self.executor.spin_once(timeout_sec=0.02), condition())[1], timeout_s)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def probe_of(ros_domain):
    """Probes on a lab rig's namespace (each lab's graph has its own), closed after the test."""
    made: list[Probe] = []

    def make(rig) -> Probe:
        made.append(Probe(rig.namespace))
        return made[-1]

    yield make
    for each in made:
        each.close()


def test_a_registered_software_camera_is_found_by_serial_like_a_plugged_in_one():
    with SoftwareRealSense("lab-registry-test", size=(64, 48), register=True) as soft:
        assert find_device("lab-registry-test") is soft.device
    with pytest.raises(DeviceError, match="not connected"):
        find_device("lab-registry-test")


def test_the_latency_gap_delays_every_torque_by_its_steps():
    class Robot:
        applied: list[float] = []

        def _torque_control(self, torques):
            self.applied.append(float(torques[0]))

    robot = Robot()
    delay_torques(robot, 3)
    for command in range(1, 8):
        robot._torque_control(np.array([command]))
    assert robot.applied == [1, 1, 1, 1, 2, 3, 4]  # the first command held until the FIFO filled, then 3 steps late


@pytest.fixture(scope="module")
def lab():
    with Lab(Gaps(), seed=3) as running:
        yield running


def front_image(lab: Lab) -> tuple[CameraConfig, np.ndarray]:
    """The rig's front camera as the lab's rig file describes it, and one frame of it through tether's driver,
    cropped like the rig's but not scaled down (for precision)."""
    rig = load_rig(str(lab.rig_path))
    front = next(c for c in rig.cameras if c.name == "front")
    full = front.model_copy(update={"output_size": (480, 480)})
    with RealSenseCamera(full) as camera:  # the default finder: the rig names the lab's device by serial
        time.sleep(0.3)  # a frame rendered after the last placement
        return full, camera.read(FRESH).image


def marker_corner_error_px(lab: Lab, camera: CameraConfig, image: np.ndarray) -> float:
    """How far (px) the top marker's corners are from where the rig's calibration projects the true cube's."""
    position, quat = lab.cube_pose()
    rotation, origin = camera_to_world(camera.pose)
    projected, _ = cv2.projectPoints((top_marker_corners(position, quat) - origin) @ rotation, np.zeros(3), np.zeros(3),
                                     camera_matrix(image_intrinsics(camera)), np.zeros(5))
    parameters = cv2.aruco.DetectorParameters()
    parameters.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_APRILTAG
    detector = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50), parameters)
    corners, ids, _ = detector.detectMarkers(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    assert ids is not None and TOP_MARKER in ids.ravel()
    seen = corners[list(ids.ravel()).index(TOP_MARKER)].reshape(4, 2)
    return float(np.abs(seen - projected.reshape(4, 2)).max())


def test_the_front_camera_streams_the_cube_marker_where_the_cube_is(lab):
    lab.place_cube(0.55, 0.05, 0.3)
    position, quat = lab.cube_pose()
    assert np.allclose(position[:2], [0.55, 0.05], atol=0.002)
    front = next(c for c in load_rig(str(lab.rig_path)).cameras if c.name == "front")
    with RealSenseCamera(front) as camera:
        assert camera.read(FRESH).image.shape == (128, 128, 3)
        capture = camera.intrinsics
        assert (capture.width, capture.height) == tuple(front.resolution) == (640, 480)
        assert capture.fx == pytest.approx(front.intrinsics.fx)
    camera, image = front_image(lab)
    # Where the rig's calibration puts the marker's corners is where the stream shows them (a wrong field of
    # view, pose, crop or face orientation is pixels off).
    assert marker_corner_error_px(lab, camera, image) < 1.5

    poses = MarkerDetector(image_intrinsics(camera), MARKER_DICTIONARY, {TOP_MARKER: MARKER_SIZE_M}).detect(image)
    rotation, origin = camera_to_world(camera.pose)
    marker_world = rotation @ poses[TOP_MARKER][:3, 3] + origin
    # The cube-pose estimator the mirror runs: 3-8 mm (once 11 mm) from the truth over 16 placements in the lab,
    # mostly along the line of sight (SUBPIX corner refinement, which it used before, was 8-22 mm off).
    assert np.linalg.norm(marker_world - (position + [0, 0, CUBE_HALF])) < 0.015
    marker_x = rotation @ poses[TOP_MARKER][:3, 0]
    yaw = np.arctan2(marker_x[1], marker_x[0])
    assert yaw == pytest.approx(Rotation.from_quat(quat).as_euler("xyz")[2], abs=np.radians(5))


def test_the_extrinsics_and_lighting_gaps_move_and_darken_what_the_camera_shows(lab):
    lab.place_cube(0.55, 0.05, 0.3)
    _, nominal = front_image(lab)
    with Lab(Gaps.named(["extrinsics", "lighting"]), seed=3) as gapped:
        gapped.place_cube(0.55, 0.05, 0.3)
        camera, image = front_image(gapped)
        assert marker_corner_error_px(gapped, camera, image) > 5.0  # the rig's calibration is now 2 cm / 2 deg off
        assert image.mean() < 0.8 * nominal.mean()


def test_a_placement_request_moves_the_cube_and_sets_it_down_at_rest(lab):
    lab.place_cube(0.42, -0.1, -0.5)
    time.sleep(0.3)
    position, quat = lab.cube_pose()
    assert position == pytest.approx([0.42, -0.1, CUBE_HALF], abs=0.002)
    assert Rotation.from_quat(quat).as_euler("xyz")[2] == pytest.approx(-0.5, abs=0.01)
    assert not lab.lifted()


def test_the_judge_places_the_cube_at_each_reset_and_reports_no_success_on_the_table(lab, probe_of):
    rig = lab.rig
    probe = probe_of(rig)
    assert rig.namespace != load_rig("franka_realsense").namespace  # not the topics of another run on this host
    with judging(lab, rig, seed=5) as judge:
        probe.events.publish(String(data="reset"))
        assert probe.until(lambda: len(judge.placements) == 1 and probe.successes)
        x, y, yaw = judge.placements[0]
        ranges = rig.randomization
        assert ranges.object_xy.low <= x - Task.nominal_xy[0] <= ranges.object_xy.high
        assert ranges.object_yaw.low <= yaw <= ranges.object_yaw.high
        assert lab.cube_pose()[0][:2] == pytest.approx([x, y], abs=0.002)
        assert not probe.successes[-1]


def test_the_dynamics_gaps_change_the_model_franky_sim_runs():
    with Lab(Gaps(), cameras=False) as nominal_lab:
        nominal = nominal_lab.model
    with Lab(Gaps.named(["payload", "friction", "cube"]), cameras=False) as gapped_lab:
        gapped = gapped_lab.model  # the server's compiled model, saved after the gaps were applied
    # ids by name in each model: the payload is a body of its own
    assert gapped.body(HAND_BODY).subtreemass == pytest.approx(nominal.body(HAND_BODY).subtreemass + 1.0)
    for joint in ARM_JOINTS:
        assert gapped.joint(joint).frictionloss == pytest.approx(2.0 * nominal.joint(joint).frictionloss)
        assert gapped.joint(joint).damping == pytest.approx(nominal.joint(joint).damping + 2.0)
    assert gapped.body(CUBE_BODY).mass == pytest.approx(0.2) and nominal.body(CUBE_BODY).mass == pytest.approx(0.1)
    assert gapped.geom(CUBE_BODY).friction[0] == pytest.approx(0.5)


def move_to(arm, rig, goal, quat, settle_ticks: int = 8) -> None:
    """Drive the arm like the arm node does: a speed-limited, box-clipped target per control tick."""
    target = arm.state().tcp_pose[:3]
    for _ in range(100):
        target = translation_target(arm.state().tcp_pose[:3], target, np.asarray(goal) - target, rig.arm.workspace,
                                    rig.arm.max_linear_speed, rig.control_dt)
        arm.move_toward(target, quat)
        time.sleep(rig.control_dt)
        if np.linalg.norm(target - goal) < 1e-4:
            break
    for _ in range(settle_ticks):
        arm.move_toward(target, quat)
        time.sleep(rig.control_dt)


def scenario_a_scripted_grasp_lifts_the_cube_and_the_judge_calls_it_a_success(probe_of):
    with Lab(cameras=False) as lab, judging(lab, lab.rig):
        rig = lab.rig
        probe = probe_of(rig)
        with make_arm(rig) as arm:
            arm.home()
            quat = arm.state().tcp_pose[3:]
            arm.set_gripper(-1)
            cube = lab.cube_pose()[0]
            move_to(arm, rig, [cube[0], cube[1], 0.12], quat)
            move_to(arm, rig, [cube[0], cube[1], CUBE_HALF], quat)
            assert not lab.lifted() and probe.until(lambda: probe.successes and not probe.successes[-1])
            arm.set_gripper(1)
            assert wait_until(lambda: arm.state().gripper < 0.7, 5.0)  # closed on the 5 cm cube (8 cm fully open)
            time.sleep(0.5)
            move_to(arm, rig, [cube[0], cube[1], 0.2], quat)
            assert lab.cube_pose()[0][2] > 0.15  # it came up with the hand
            assert lab.lifted() and probe.until(lambda: probe.successes[-1])


def scenario_the_arm_homes_every_time_with_the_dynamics_gaps_on():
    """Payload, friction and latency together leave franky-sim's hold 10 mrad short of home (2 homes in 3 failed
    at a 10 mrad tolerance)."""
    with Lab(Gaps.named(["payload", "friction", "latency"]), cameras=False) as lab:
        rig = lab.rig
        with make_arm(rig) as arm:
            quat = None
            for goal in ([0.62, 0.18, 0.08], [0.35, -0.2, 0.3], [0.6, -0.15, 0.05]):
                arm.home()
                np.testing.assert_allclose(arm.state().joint_positions, rig.arm.home_joints, atol=0.02)
                quat = arm.state().tcp_pose[3:] if quat is None else quat
                move_to(arm, rig, goal, quat, settle_ticks=2)


def test_lab_scenarios_with_the_franka_backend_in_their_own_process():
    """As tests/robot_ws/test_arm_franka.py: franky in a child process without realtime scheduling."""
    result = subprocess.run(
        [*NO_REALTIME, sys.executable, "-m", "pytest", __file__, "-p", "no:cacheprovider", "-o", "python_functions=scenario_*"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout
