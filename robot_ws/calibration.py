"""Camera calibration: intrinsics from a ChArUco board, extrinsics by hand-eye calibration, both
written into the rig, so the twin renders from where the real cameras are.

OpenCV's `CharucoDetector` finds the board's corners, `calibrateCamera` fits the pinhole model
and `solvePnP` gives the board's pose in each view; `hand_eye` relates those to the arm's TCP
poses (Park & Martin, as OpenCV's calibrateHandEye does; OpenCV 5.0's wheels lack that function). Two mounts:
  - wrist (eye-in-hand): the board lies still, the camera rides on the hand; the result is the
    camera in the hand frame (the twin's `hand` body: the TCP frame moved back by the TCP offset).
  - world (eye-to-hand): the board is held by the hand, the camera stands still; the result is
    the camera in the robot base frame.
Poses are 4x4 homogeneous matrices; OpenCV's camera frame looks along +z with y down, the twin's
(MuJoCo's) along -z with y up, and `camera_pose` converts between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from tether.config import CameraIntrinsics, CameraPose
from tether.transforms import CV_TO_MUJOCO, homogeneous

TCP_OFFSET_M = 0.1034  # Franka hand: the TCP lies this far along the hand's z axis (as in the twin)
MIN_CORNERS = 6


class CalibrationError(ValueError):
    """Too few or too poor views to calibrate; the message says what is missing."""


@dataclass(frozen=True)
class BoardSpec:
    """A ChArUco board as printed: squares, their size, and the ArUco dictionary of its markers."""

    squares_x: int = 7
    squares_y: int = 5
    square_m: float = 0.04
    marker_m: float = 0.03
    dictionary: str = "DICT_5X5_100"

    def board(self) -> cv2.aruco.CharucoBoard:
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_m, self.marker_m, dictionary)

    def image(self, pixels_per_square: int = 100) -> np.ndarray:
        """The board as a grey image to print (or to texture the twin with), no margin."""
        size = (self.squares_x * pixels_per_square, self.squares_y * pixels_per_square)
        return self.board().generateImage(size, marginSize=0, borderBits=1)


def pose_matrix(tcp_pose: np.ndarray) -> np.ndarray:
    """4x4 from an xyz + quaternion xyzw pose (the layout of `ArmState.tcp_pose`)."""
    return homogeneous(Rotation.from_quat(tcp_pose[3:]).as_matrix(), tcp_pose[:3])


def detect(image: np.ndarray, spec: BoardSpec) -> tuple[np.ndarray, np.ndarray] | None:
    """Board points (N, 3) in the board frame and their pixels (N, 2), or None if too few were found."""
    board = spec.board()
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    corners, ids, _, _ = cv2.aruco.CharucoDetector(board).detectBoard(grey)
    if ids is None or len(ids) < MIN_CORNERS:
        return None
    object_points, image_points = board.matchImagePoints(corners, ids)
    return object_points.reshape(-1, 3), image_points.reshape(-1, 2)


def calibrate_intrinsics(images: list[np.ndarray], spec: BoardSpec) -> CameraIntrinsics:
    """The pinhole model and distortion that best explain the board in these views (several
    angles and distances; 10 or more views are typical)."""
    found = [d for d in (detect(image, spec) for image in images) if d is not None]
    if len(found) < 3:
        raise CalibrationError(f"the board was found in {len(found)} of {len(images)} views; need at least 3")
    height, width = images[0].shape[:2]
    rms, matrix, distortion, _, _ = cv2.calibrateCamera(
        [o.astype(np.float32) for o, _ in found], [i.astype(np.float32) for _, i in found], (width, height), None, None
    )
    return CameraIntrinsics(
        size=(width, height),
        fx=float(matrix[0, 0]),
        fy=float(matrix[1, 1]),
        cx=float(matrix[0, 2]),
        cy=float(matrix[1, 2]),
        distortion=tuple(float(d) for d in np.ravel(distortion)),
        rms_px=float(rms),
    )


def board_in_camera(image: np.ndarray, spec: BoardSpec, intrinsics: CameraIntrinsics) -> np.ndarray | None:
    """The board's pose in the camera's (OpenCV) frame, 4x4, or None if it is not seen."""
    found = detect(image, spec)
    if found is None:
        return None
    matrix = np.array([[intrinsics.fx, 0, intrinsics.cx], [0, intrinsics.fy, intrinsics.cy], [0, 0, 1]])
    ok, rvec, tvec = cv2.solvePnP(found[0], found[1], matrix, np.array(intrinsics.distortion))
    if not ok:
        return None
    return homogeneous(cv2.Rodrigues(rvec)[0], tvec)


def hand_eye(tcp_in_base: list[np.ndarray], board_in_cam: list[np.ndarray], mount: str) -> np.ndarray:
    """The camera's pose (OpenCV frame, 4x4): in the TCP frame for `wrist`, in the base for `world`.

    Solves A X = X B over all pairs of views by Park & Martin's closed form (rotation from the
    rotation vectors by SVD, then translation by least squares); OpenCV 5.0's wheels no longer
    ship `calibrateHandEye`. The views need rotations about at least two different axes.
    """
    if len(tcp_in_base) != len(board_in_cam) or len(tcp_in_base) < 3:
        raise CalibrationError(f"need 3 or more paired views, got {len(tcp_in_base)} arm poses and {len(board_in_cam)} board poses")
    if mount == "wrist":
        gripper = list(tcp_in_base)
    elif mount == "world":  # eye-to-hand is eye-in-hand with the base and the gripper swapped
        gripper = [np.linalg.inv(t) for t in tcp_in_base]
    else:
        raise ValueError(f"mount must be 'wrist' or 'world', got '{mount}'")
    pairs = [(i, j) for i in range(len(gripper)) for j in range(i + 1, len(gripper))]
    a = [np.linalg.inv(gripper[j]) @ gripper[i] for i, j in pairs]  # gripper motion between the views
    b = [board_in_cam[j] @ np.linalg.inv(board_in_cam[i]) for i, j in pairs]  # the same motion seen by the camera
    alpha = np.array([Rotation.from_matrix(m[:3, :3]).as_rotvec() for m in a])
    beta = np.array([Rotation.from_matrix(m[:3, :3]).as_rotvec() for m in b])
    if np.linalg.matrix_rank(alpha, tol=1e-3) < 2:
        raise CalibrationError("the arm poses rotate about fewer than two axes; vary the wrist orientation")
    u, _, vt = np.linalg.svd(beta.T @ alpha)  # rotation taking each beta onto its alpha (Kabsch)
    rotation = vt.T @ np.diag([1.0, 1.0, np.linalg.det(vt.T @ u.T)]) @ u.T
    lhs = np.concatenate([m[:3, :3] - np.eye(3) for m in a])
    rhs = np.concatenate([rotation @ n[:3, 3] - m[:3, 3] for m, n in zip(a, b)])
    translation = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    return homogeneous(rotation, translation)


def camera_pose(camera_cv: np.ndarray, mount: str, intrinsics: CameraIntrinsics) -> CameraPose:
    """The rig's `pose` entry (twin convention) from an OpenCV camera pose given by `hand_eye`."""
    rotation = camera_cv[:3, :3] @ CV_TO_MUJOCO
    position = camera_cv[:3, 3].copy()
    if mount == "wrist":
        position[2] += TCP_OFFSET_M  # from the TCP frame to the hand frame (same orientation)
    quat = Rotation.from_matrix(rotation).as_quat()
    return CameraPose(
        mount=mount,
        pos=tuple(round(float(v), 5) for v in position),
        quat=tuple(round(float(v), 6) for v in quat),
        fovy_deg=round(intrinsics.fovy_deg, 3),
    )


def write_to_rig(rig_path: Path, camera: str, intrinsics: CameraIntrinsics, pose: CameraPose | None) -> None:
    """Store the calibration in the rig YAML (comments and key order kept) and check it still loads."""
    from ruamel.yaml import YAML

    from tether.config import load_rig

    yaml = YAML()
    yaml.preserve_quotes = True
    data = yaml.load(rig_path.read_text())
    entries = [c for c in data.get("cameras", []) if c.get("name") == camera]
    if not entries:
        raise CalibrationError(f"{rig_path}: no camera named '{camera}'")
    entry = entries[0]
    entry["intrinsics"] = intrinsics.model_dump(mode="json")
    if pose is not None:
        entry["pose"] = pose.model_dump(mode="json", exclude_none=True)
    with rig_path.open("w") as stream:
        yaml.dump(data, stream)
    load_rig(rig_path)
