"""ArUco / AprilTag markers: where a calibrated camera sees them.

OpenCV's `ArucoDetector` finds each marker's four corners and `solvePnP` (IPPE_SQUARE, made for
planar squares) turns them into the marker's pose in the camera's OpenCV frame (x right, y down,
z forward). The marker frame is centred on the black square, x to its right, y up, z out of the
printed face, as OpenCV defines it.

Detection runs on the image a camera node publishes, which is cropped and resized from the
capture; `image_intrinsics` carries the calibration (or, for a twin camera, its field of view)
through that crop and resize. A marker needs roughly 20 pixels a side in that image to be read.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from tether.config import CameraConfig, CameraIntrinsics
from tether.transforms import homogeneous


def aruco_dictionary(name: str) -> cv2.aruco.Dictionary:
    """An OpenCV predefined dictionary by name (`DICT_4X4_50`, `DICT_APRILTAG_36h11`, ...)."""
    code = getattr(cv2.aruco, name, None)
    if not name.startswith("DICT_") or not isinstance(code, int):
        raise ValueError(f"marker dictionary '{name}': not an OpenCV ArUco dictionary")
    return cv2.aruco.getPredefinedDictionary(code)


def image_intrinsics(camera: CameraConfig) -> CameraIntrinsics:
    """The pinhole model of the image the camera publishes (after its crop and resize).

    From the camera's calibration if it has one, else an ideal pinhole with the twin pose's
    vertical field of view (how the twin renders it). Pixel centres sit at integer coordinates.
    """
    width, height = camera.resolution
    if camera.intrinsics is not None:
        base = camera.intrinsics
    elif camera.pose is not None:
        focal = 0.5 * height / math.tan(math.radians(camera.pose.fovy_deg) / 2)
        base = CameraIntrinsics(size=(width, height), fx=focal, fy=focal, cx=(width - 1) / 2, cy=(height - 1) / 2)
    else:
        raise ValueError(f"camera '{camera.name}': neither intrinsics nor a pose with a field of view")
    x0, y0, x1, y1 = camera.crop or (0, 0, width, height)
    out_w, out_h = camera.output_size
    sx, sy = out_w / (x1 - x0), out_h / (y1 - y0)
    return CameraIntrinsics(
        size=(out_w, out_h), fx=base.fx * sx, fy=base.fy * sy,
        cx=(base.cx - x0 + 0.5) * sx - 0.5, cy=(base.cy - y0 + 0.5) * sy - 0.5, distortion=base.distortion,
    )


def camera_matrix(intrinsics: CameraIntrinsics) -> np.ndarray:
    return np.array([[intrinsics.fx, 0.0, intrinsics.cx], [0.0, intrinsics.fy, intrinsics.cy], [0.0, 0.0, 1.0]])


class MarkerDetector:
    """Finds markers of known ids and sizes in one camera's images."""

    def __init__(self, intrinsics: CameraIntrinsics, dictionary: str, sizes_m: dict[int, float]) -> None:
        self.intrinsics = intrinsics
        self.sizes_m = dict(sizes_m)
        parameters = cv2.aruco.DetectorParameters()
        # Whole-pixel corners cost cm at 1 m. SUBPIX pulls a rendered or printed marker's L-corners ~0.8 px inwards
        # (8-22 mm along the line of sight for a 4 cm marker at 0.6 m in the lab); APRILTAG's edge fit is 3-8 mm.
        parameters.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_APRILTAG
        self._detector = cv2.aruco.ArucoDetector(aruco_dictionary(dictionary), parameters)
        self._matrix = camera_matrix(intrinsics)
        self._distortion = np.array(intrinsics.distortion, dtype=np.float64)

    def detect(self, image: np.ndarray) -> dict[int, np.ndarray]:
        """Pose (4x4, marker in the camera's OpenCV frame) of every known marker seen in an RGB image."""
        if tuple(image.shape[1::-1]) != tuple(self.intrinsics.size):
            raise ValueError(f"image is {image.shape[1]}x{image.shape[0]}, the intrinsics are for {list(self.intrinsics.size)}")
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        corners, ids, _ = self._detector.detectMarkers(grey)
        poses: dict[int, np.ndarray] = {}
        for square, marker_id in zip(corners, [] if ids is None else ids.ravel()):
            size = self.sizes_m.get(int(marker_id))
            if size is None:
                continue
            h = size / 2  # corners in OpenCV's order: top-left, top-right, bottom-right, bottom-left
            points = np.array([[-h, h, 0], [h, h, 0], [h, -h, 0], [-h, -h, 0]], dtype=np.float64)
            ok, rvec, tvec = cv2.solvePnP(
                points, square.reshape(4, 2).astype(np.float64), self._matrix, self._distortion,
                flags=cv2.SOLVEPNP_IPPE_SQUARE,
            )
            if ok:
                poses[int(marker_id)] = homogeneous(cv2.Rodrigues(rvec)[0], tvec)
        return poses
