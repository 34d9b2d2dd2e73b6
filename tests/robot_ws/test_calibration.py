"""Camera calibration tested in MuJoCo, the twin's renderer: a ChArUco board is rendered from
known camera poses, and intrinsics and hand-eye extrinsics must come back within tolerance.
The 'hand' is a mocap body standing in for the arm's TCP (no arm is needed to test the math)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tether.config import CameraIntrinsics, CameraPose, load_rig, resolve_rig_path
from tether.robot_ws.calibration import (
    TCP_OFFSET_M,
    BoardSpec,
    CalibrationError,
    board_in_camera,
    calibrate_intrinsics,
    camera_pose,
    hand_eye,
    pose_matrix,
    write_to_rig,
)
from tether.transforms import lookat_quat_xyzw

import mujoco  # noqa: E402 - after tether, which picks the headless GL backend before mujoco loads

W, H, FOVY = 640, 480, 55.0
SPEC = BoardSpec()
DOWN = Rotation.from_euler("x", 180, degrees=True)  # a TCP pointing down, like the Franka's
# Truth: where the camera sits (MuJoCo camera convention, quat wxyz as in MJCF).
WRIST_CAM_POS = np.array([0.06, 0.01, -0.06])
WRIST_CAM_QUAT = Rotation.from_euler("xyz", [180, 8, -5], degrees=True)  # looks along the TCP's z, tilted
WORLD_CAM_POS = np.array([0.9, 0.1, 0.55])
WORLD_CAM_QUAT = Rotation.from_quat(lookat_quat_xyzw(WORLD_CAM_POS, np.array([0.45, 0.05, 0.25]), np.array([0, 0, 1.0])))


def wxyz(rotation: Rotation) -> str:
    x, y, z, w = rotation.as_quat()
    return f"{w} {x} {y} {z}"


def scene(tmp_path: Path, mount: str) -> tuple[mujoco.MjModel, mujoco.MjData, mujoco.Renderer]:
    board_png = tmp_path / "board.png"
    cv2.imwrite(str(board_png), SPEC.image())
    hx, hy = SPEC.squares_x * SPEC.square_m / 2, SPEC.squares_y * SPEC.square_m / 2
    board = f'<geom type="plane" size="{hx} {hy} 0.01" material="board"/>'
    if mount == "wrist":
        world = f'<body pos="0.5 0 0">{board}</body>'
        hand = f'<camera name="cam" pos="{" ".join(map(str, WRIST_CAM_POS))}" quat="{wxyz(WRIST_CAM_QUAT)}" fovy="{FOVY}"/>'
    else:
        look = Rotation.from_euler("y", 90, degrees=True)  # the board held facing +x, towards the camera
        world = f'<camera name="cam" pos="{" ".join(map(str, WORLD_CAM_POS))}" quat="{wxyz(WORLD_CAM_QUAT)}" fovy="{FOVY}"/>'
        hand = f'<body pos="0 0 0.1" quat="{wxyz(look)}">{board}</body>'
    xml = f"""<mujoco>
      <asset><texture name="board" type="2d" file="{board_png}"/><material name="board" texture="board"/></asset>
      <visual><global offwidth="{W}" offheight="{H}"/><headlight ambient="0.8 0.8 0.8" diffuse="0.2 0.2 0.2"/></visual>
      <worldbody>{world}<body name="hand" mocap="true">{hand}</body></worldbody>
    </mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    return model, mujoco.MjData(model), mujoco.Renderer(model, H, W)


def tcp_poses(centre: np.ndarray, base: Rotation, count: int = 12, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    poses = []
    for _ in range(count):
        turn = Rotation.from_euler("xyz", rng.uniform(-15, 15, 3), degrees=True)
        position = centre + rng.uniform(-0.03, 0.03, 3)
        poses.append(np.concatenate([position, (base * turn).as_quat()]))
    return poses


def render_views(model, data, renderer, poses: list[np.ndarray]) -> list[np.ndarray]:
    images = []
    for pose in poses:
        data.mocap_pos[0] = pose[:3]
        x, y, z, w = pose[3:]
        data.mocap_quat[0] = [w, x, y, z]
        mujoco.mj_forward(model, data)
        renderer.update_scene(data, camera="cam")
        images.append(renderer.render())
    return images


def same_rotation(quat_a: tuple, quat_b: np.ndarray, tol_deg: float) -> bool:
    angle = (Rotation.from_quat(quat_a) * Rotation.from_quat(quat_b).inv()).magnitude()
    return math.degrees(angle) < tol_deg


def test_intrinsics_and_wrist_extrinsics_are_recovered(tmp_path: Path):
    model, data, renderer = scene(tmp_path, "wrist")
    poses = tcp_poses(np.array([0.5, 0.0, 0.38]), DOWN)
    images = render_views(model, data, renderer, poses)
    intrinsics = calibrate_intrinsics(images, SPEC)
    focal = (H / 2) / math.tan(math.radians(FOVY) / 2)
    assert intrinsics.fx == pytest.approx(focal, rel=0.01) and intrinsics.fy == pytest.approx(focal, rel=0.01)
    assert abs(intrinsics.cx - W / 2) < 3 and abs(intrinsics.cy - H / 2) < 3
    assert intrinsics.fovy_deg == pytest.approx(FOVY, abs=0.5) and intrinsics.rms_px < 1.0

    boards = [board_in_camera(image, SPEC, intrinsics) for image in images]
    assert all(b is not None for b in boards)
    cam_in_tcp = hand_eye([pose_matrix(p) for p in poses], boards, "wrist")
    pose = camera_pose(cam_in_tcp, "wrist", intrinsics)
    np.testing.assert_allclose(pose.pos, WRIST_CAM_POS + [0, 0, TCP_OFFSET_M], atol=0.005)  # in the twin's hand frame
    assert same_rotation(pose.quat, WRIST_CAM_QUAT.as_quat(), tol_deg=1.0)
    renderer.close()


def test_world_camera_extrinsics_are_recovered_with_the_board_in_the_hand(tmp_path: Path):
    model, data, renderer = scene(tmp_path, "world")
    poses = tcp_poses(np.array([0.45, 0.05, 0.35]), DOWN, seed=1)
    images = render_views(model, data, renderer, poses)
    intrinsics = calibrate_intrinsics(images, SPEC)
    boards = [board_in_camera(image, SPEC, intrinsics) for image in images]
    kept = [(p, b) for p, b in zip(poses, boards) if b is not None]
    assert len(kept) >= 8
    cam_in_base = hand_eye([pose_matrix(p) for p, _ in kept], [b for _, b in kept], "world")
    pose = camera_pose(cam_in_base, "world", intrinsics)
    np.testing.assert_allclose(pose.pos, WORLD_CAM_POS, atol=0.01)
    assert same_rotation(pose.quat, WORLD_CAM_QUAT.as_quat(), tol_deg=1.0)
    renderer.close()


def test_calibration_is_written_into_the_rig_keeping_its_comments(tmp_path: Path):
    rig_path = tmp_path / "rig.yaml"
    rig_path.write_text(resolve_rig_path("franka_realsense").read_text())
    intrinsics = CameraIntrinsics(size=(640, 480), fx=600.0, fy=601.0, cx=321.0, cy=239.0, rms_px=0.3)
    pose = CameraPose(mount="wrist", pos=(0.05, 0.0, 0.04), quat=(1.0, 0.0, 0.0, 0.0), fovy_deg=intrinsics.fovy_deg)
    write_to_rig(rig_path, "wrist", intrinsics, pose)
    rig = load_rig(rig_path)
    wrist = next(c for c in rig.cameras if c.name == "wrist")
    assert wrist.intrinsics == intrinsics and wrist.pose == pose
    assert "# serial number" in rig_path.read_text()
    with pytest.raises(CalibrationError, match="no camera named 'side'"):
        write_to_rig(rig_path, "side", intrinsics, pose)


def test_too_few_views_is_a_clear_error():
    blank = np.zeros((H, W, 3), np.uint8)
    with pytest.raises(CalibrationError, match="the board was found in 0 of 2 views; need at least 3"):
        calibrate_intrinsics([blank, blank], SPEC)
