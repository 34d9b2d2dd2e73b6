"""The lab's world: franky-sim's own FR3 scene (its meshes, lights and materials) with a table and a marked cube.

Geometry follows the twin (sim2real/twin/scene.py) so that workspace limits mean the same: the robot
base at the world origin, the table top at z = 0 under it, the floor 0.75 m below, a 5 cm cube
starting at (0.5, 0) with a free joint. The cube carries printed ArUco markers (DICT_4X4_50, a
0.04 m black square centred on each 0.05 m face, a white border around it): id 0 on top, ids 1..4
on the side faces facing +x, +y, -x, -y. A marker's frame (OpenCV's: centred, x right, y up, z out
of the face) on the top face equals the cube's frame lifted by half its size.

Everything here edits franky-sim's MJCF tree before it compiles, except the joint friction gap,
which scales compiled values (`apply_compiled_gaps`) because the joints' nominal friction comes from
MJCF defaults.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import mujoco
import numpy as np

from benchmarks.lab.gaps import Gaps
from tether.sim2real.twin.tasks import PickCube

ROBOT = "robot0_"
HAND_BODY = ROBOT + "hand"
ARM_JOINTS = tuple(f"{ROBOT}fr3_joint{i}" for i in range(1, 8))
CUBE_BODY, CUBE_JOINT = "cube", "cube_joint"
CUBE_HALF = PickCube.half_size
CUBE_START_XY = (0.5, 0.0)
MARKER_DICTIONARY = "DICT_4X4_50"
MARKER_SIZE_M = 0.04
TOP_MARKER = 0
FACE_MARKERS = {"top": 0, "+x": 1, "+y": 2, "-x": 3, "-y": 4}
CAPTURE_SIZE = (640, 480)  # offscreen buffer, the RealSense capture size
_FACE_PX = 150  # texture pixels across a face; the black square is 4/5 of it (5 cells of 24 px = 120 px)


@dataclass(frozen=True)
class RenderCamera:
    """A camera as the lab renders it (which may differ from the rig's calibration by the extrinsics gap)."""

    name: str
    mount: str  # "world" or "wrist" (then relative to the hand)
    pos: tuple[float, float, float]
    quat_wxyz: tuple[float, float, float, float]
    fovy_deg: float


def _marker_face(marker_id: int) -> np.ndarray:
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, MARKER_DICTIONARY))
    black = round(_FACE_PX * MARKER_SIZE_M / (2 * CUBE_HALF))
    face = np.full((_FACE_PX, _FACE_PX), 255, np.uint8)
    border = (_FACE_PX - black) // 2
    face[border : border + black, border : border + black] = cv2.aruco.generateImageMarker(dictionary, marker_id, black)
    return face


def write_marker_textures(folder: Path) -> dict[str, Path]:
    """One PNG per cube face, named by the MJCF cube-texture attribute it feeds.

    MuJoCo maps a cube texture's faces onto a box as: right +x, left -x, up +y, down -y, front +z,
    back -z; each image is turned here so the marker reads upright as seen from outside, with the
    top marker's x along the cube's x (tests/benchmarks/test_lab.py checks the top marker's corners;
    the side markers were checked by detecting them from four side cameras: upright, z out of the face).
    """
    folder.mkdir(parents=True, exist_ok=True)
    blank = np.full((_FACE_PX, _FACE_PX), 255, np.uint8)
    faces = {
        "fileright": np.rot90(_marker_face(FACE_MARKERS["+x"]), 1),
        "fileleft": np.rot90(_marker_face(FACE_MARKERS["-x"]), -1),
        "fileup": np.rot90(_marker_face(FACE_MARKERS["+y"]), 2),
        "filedown": _marker_face(FACE_MARKERS["-y"]),
        "filefront": _marker_face(FACE_MARKERS["top"]),
        "fileback": blank,
    }
    paths = {}
    for attribute, image in faces.items():
        paths[attribute] = folder / f"cube_{attribute[4:]}.png"
        cv2.imwrite(str(paths[attribute]), np.ascontiguousarray(image))
    return paths


def _scaled(values: str, factors: np.ndarray) -> str:
    return " ".join(f"{v:.4g}" for v in np.array(values.split(), float) * factors)


def _vec(values: object) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def build_scene(scene: ET.Element, gaps: Gaps, cameras: list[RenderCamera], textures: Path) -> None:
    """Add the table, the cube, the cameras and the MJCF-level gaps to franky-sim's scene tree (after add_robot)."""
    worldbody = scene.find("worldbody")
    option = scene.find("option")
    # The contact model a grasp needs (the twin uses the same); franky-sim leaves MuJoCo's defaults.
    option.set("cone", "elliptic")
    option.set("impratio", "10")
    visual = scene.find("visual")
    ET.SubElement(visual, "global", offwidth=str(CAPTURE_SIZE[0]), offheight=str(CAPTURE_SIZE[1]))

    light = gaps.light_scale * np.array(gaps.light_tint)
    headlight = visual.find("headlight")
    for attribute in ("diffuse", "ambient"):
        headlight.set(attribute, _scaled(headlight.get(attribute), light))
    for element in worldbody.iter("light"):
        for attribute in ("diffuse", "specular"):
            element.set(attribute, _scaled(element.get(attribute), light))

    for geom in worldbody.findall("geom"):
        if geom.get("name") == "ground":
            geom.set("pos", "0 0 -0.75")
    ET.SubElement(worldbody, "geom", name="table", type="box", pos="0.45 0 -0.02", size="0.6 0.7 0.02",
                  rgba=_vec(gaps.table_rgba))

    asset = scene.find("asset")
    ET.SubElement(asset, "texture", name="cube_markers", type="cube",
                  **{k: str(v) for k, v in write_marker_textures(textures).items()})
    ET.SubElement(asset, "material", name="cube_markers", texture="cube_markers", rgba=_vec(gaps.cube_rgba),
                  specular="0.1", shininess="0.1")
    cube = ET.SubElement(worldbody, "body", name=CUBE_BODY, pos=_vec((*CUBE_START_XY, CUBE_HALF)))
    ET.SubElement(cube, "freejoint", name=CUBE_JOINT)
    ET.SubElement(cube, "geom", name=CUBE_BODY, type="box", size=_vec([CUBE_HALF] * 3), mass=f"{gaps.cube_mass_kg:g}",
                  friction=f"{gaps.cube_friction:g} 0.01 0.001", condim="4", material="cube_markers")

    hand = next(b for b in worldbody.iter("body") if b.get("name") == HAND_BODY)
    if gaps.payload_kg > 0:
        payload = ET.SubElement(hand, "body", name="lab_payload", pos=f"0 0 {gaps.payload_offset_m:g}")
        inertia = 0.4 * gaps.payload_kg * 0.02**2  # a 2 cm-radius solid sphere
        ET.SubElement(payload, "inertial", pos="0 0 0", mass=f"{gaps.payload_kg:g}", diaginertia=_vec([inertia] * 3))
    for camera in cameras:
        parent = worldbody if camera.mount == "world" else hand
        ET.SubElement(parent, "camera", name=camera.name, pos=_vec(camera.pos), quat=_vec(camera.quat_wxyz),
                      fovy=f"{camera.fovy_deg:g}")


def apply_compiled_gaps(model: mujoco.MjModel, gaps: Gaps) -> None:
    """The gaps that scale compiled values: arm joint friction and damping."""
    for name in ARM_JOINTS:
        dof = model.jnt_dofadr[model.joint(name).id]
        model.dof_frictionloss[dof] *= gaps.friction_scale
        model.dof_damping[dof] += gaps.extra_damping
