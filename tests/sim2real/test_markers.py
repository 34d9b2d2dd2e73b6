"""Marker-based object placement: a marker rendered on the cube in a twin scene is found by OpenCV
and the mirror twin puts its own cube where the rendered one is."""

from __future__ import annotations

import tether  # noqa: F401 - first: it chooses MuJoCo's headless GL before mujoco loads

import cv2
import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tether.config import CameraIntrinsics, MirrorConfig, load_rig
from tether.sim2real.markers import MarkerDetector, aruco_dictionary, image_intrinsics
from tether.sim2real.mirror import MirrorTwin
from tether.sim2real.twin.render import CameraRenderer
from tether.sim2real.twin.scene import build_model
from tether.sim2real.twin.tasks import PickCube
from tether.transforms import xyzw_to_wxyz

DICTIONARY = "DICT_4X4_50"
MARKER_ID = 3
MARKER_M = 0.036  # the black square
CELL_PX = 10
QUIET_CELLS = 1  # white margin around the black square, in marker cells


def marker_texture(marker_id: int) -> np.ndarray:
    """The marker with a white quiet zone, RGB, as it would be printed."""
    black = cv2.aruco.generateImageMarker(aruco_dictionary(DICTIONARY), marker_id, 6 * CELL_PX, borderBits=1)
    pad = QUIET_CELLS * CELL_PX
    grey = cv2.copyMakeBorder(black, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)
    return np.repeat(grey[:, :, None], 3, axis=2)


class MarkedCube(PickCube):
    """The pick_cube scene with a printed marker stuck on the cube's top face."""

    def add_to_scene(self, spec: mujoco.MjSpec) -> None:
        super().add_to_scene(spec)
        image = marker_texture(MARKER_ID)
        texture = spec.add_texture(
            name="marker", type=mujoco.mjtTexture.mjTEXTURE_2D, width=image.shape[1], height=image.shape[0], nchannel=3
        )
        texture.data = image.tobytes()
        material = spec.add_material(name="marker")
        material.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "marker"
        half = MARKER_M * image.shape[0] / (6 * CELL_PX) / 2
        spec.body("cube").add_geom(
            type=mujoco.mjtGeom.mjGEOM_BOX, size=[half, half, 0.0005], pos=[0, 0, self.half_size + 0.0005],
            material="marker", contype=0, conaffinity=0,
        )


def scene_rig(resolution: tuple[int, int], crop, output: tuple[int, int]):
    """twin_panda with a larger front camera that searches for the cube's marker."""
    rig = load_rig("twin_panda")
    front = rig.cameras[0].model_copy(update={"resolution": resolution, "crop": crop, "output_size": output})
    mirror = MirrorConfig.model_validate({
        "dictionary": DICTIONARY, "detect_camera": "front",
        "markers": [{"id": MARKER_ID, "body": "cube", "size_m": MARKER_M, "offset": [0, 0, PickCube.half_size + 0.001]}],
    })
    return rig.model_copy(update={"cameras": [front], "mirror": mirror})


def render_marked_cube(rig, position: np.ndarray, yaw: float) -> np.ndarray:
    """The front camera's image of a scene whose cube (with its marker) stands at a known pose."""
    task = MarkedCube(rig.arm.workspace)
    model = build_model(rig, task)
    data = mujoco.MjData(model)
    task.bind(model)
    joint = model.joint("cube_joint")
    address = model.jnt_qposadr[joint.id]
    data.qpos[address : address + 3] = position
    data.qpos[address + 3 : address + 7] = xyzw_to_wxyz(Rotation.from_euler("z", yaw).as_quat())
    mujoco.mj_forward(model, data)
    renderer = CameraRenderer(model, rig.cameras)
    try:
        return renderer.render(data)["front"]
    finally:
        renderer.close()


@pytest.mark.parametrize(
    ("resolution", "crop", "output"),
    [((720, 720), None, (720, 720)), ((960, 720), (120, 0, 840, 720), (640, 640))],
    ids=["full", "cropped-resized"],
)
def test_mirror_places_the_cube_where_its_rendered_marker_is(resolution, crop, output):
    rig = scene_rig(resolution, crop, output)
    truth_position, truth_yaw = np.array([0.52, -0.06, PickCube.half_size]), 0.5
    image = render_marked_cube(rig, truth_position, truth_yaw)

    mirror = MirrorTwin(rig)
    try:
        before = mirror.body_pose("cube")
        assert np.linalg.norm(before[:3] - truth_position) > 0.02  # the mirror's cube starts elsewhere
        mirror.follow(np.array(rig.arm.home_joints), 1.0)
        assert mirror.place_from_image(image) == [MARKER_ID]
        placed = mirror.body_pose("cube")
    finally:
        mirror.close()
    # A single marker's depth is its least certain coordinate: ~0.4 px of corner noise on a
    # 30 px square is 4 mm along the line of sight at 0.6 m.
    assert np.linalg.norm(placed[:3] - truth_position) < 0.008
    truth = Rotation.from_euler("z", truth_yaw)
    angle = (Rotation.from_quat(placed[3:]) * truth.inv()).magnitude()
    assert np.degrees(angle) < 2.0


def test_detector_ignores_unknown_ids_and_refuses_a_wrong_image_size():
    rig = scene_rig((480, 480), None, (480, 480))
    image = render_marked_cube(rig, np.array([0.5, 0.0, PickCube.half_size]), 0.0)
    intrinsics = image_intrinsics(rig.cameras[0])
    assert MarkerDetector(intrinsics, DICTIONARY, {MARKER_ID + 1: MARKER_M}).detect(image) == {}
    assert list(MarkerDetector(intrinsics, DICTIONARY, {MARKER_ID: MARKER_M}).detect(image)) == [MARKER_ID]
    with pytest.raises(ValueError, match=r"image is 240x240, the intrinsics are for \[480, 480\]"):
        MarkerDetector(intrinsics, DICTIONARY, {MARKER_ID: MARKER_M}).detect(image[::2, ::2])


def test_image_intrinsics_follow_the_crop_and_resize():
    camera = load_rig("twin_panda").cameras[0].model_copy(update={
        "resolution": (640, 480), "crop": (80, 0, 560, 480), "output_size": (240, 240), "pose": None,
        "intrinsics": CameraIntrinsics(size=(640, 480), fx=600.0, fy=590.0, cx=330.0, cy=250.0),
    })
    out = image_intrinsics(camera)
    assert out.size == (240, 240)
    assert out.fx == pytest.approx(300.0) and out.fy == pytest.approx(295.0)
    # a point at the principal point stays at the principal point
    assert out.cx == pytest.approx((330.0 - 80 + 0.5) * 0.5 - 0.5) and out.cy == pytest.approx((250.0 + 0.5) * 0.5 - 0.5)


def test_unknown_dictionary_and_marker_body_are_one_line_errors():
    with pytest.raises(ValueError, match=r"^marker dictionary 'DICT_NOPE': not an OpenCV ArUco dictionary$"):
        aruco_dictionary("DICT_NOPE")
    rig = scene_rig((480, 480), None, (480, 480))
    wrong = rig.mirror.model_copy(update={"markers": [rig.mirror.markers[0].model_copy(update={"body": "mug"})]})
    with pytest.raises(ValueError, match=r"mirror.markers id 3: no body 'mug' in the twin of task 'pick_cube'"):
        MirrorTwin(rig.model_copy(update={"mirror": wrong}))
