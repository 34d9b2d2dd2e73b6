"""The live twin: a twin that mirrors a real robot instead of simulating it.

`MirrorTwin` sets the arm's joints and finger opening from the real arm's measurements
kinematically (no physics step: the real arm is the physics), places the bodies that carry
markers where a camera sees them, and renders the rig's cameras from their calibrated poses.
Its task score says whether the real scene would count as a success in the twin, and its task
state gives state-only policies the object poses the real side cannot measure directly.
"""

from __future__ import annotations

import logging

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from tether.config import MarkerConfig, RandomizationConfig, RigConfig, TwinArm
from tether.sim2real.markers import MarkerDetector, image_intrinsics
from tether.sim2real.twin.robot import FINGER_MAX_OPENING
from tether.sim2real.twin.sim import TwinSim
from tether.sim2real.twin.tasks import Score
from tether.transforms import CV_TO_MUJOCO, homogeneous, wxyz_to_xyzw, xyzw_to_wxyz

log = logging.getLogger(__name__)


def mirror_rig(rig: RigConfig) -> RigConfig:
    """A twin rig standing for `rig`: the same arm limits and rates, its posed cameras as twin cameras.

    A camera without a pose (not calibrated) cannot be rendered and is left out; randomisation is
    off, since the mirror shows the scene as measured.
    """
    if isinstance(rig.arm, TwinArm):
        arm = rig.arm
    else:
        shared = {k: v for k, v in rig.arm.model_dump().items() if k in TwinArm.model_fields and k != "backend"}
        arm = TwinArm(**shared)
    cameras = []
    for camera in rig.cameras:
        if camera.pose is None:
            log.warning("rig '%s': camera '%s' has no calibrated pose; the mirror does not render it", rig.name, camera.name)
            continue
        cameras.append(camera.model_copy(update={
            "backend": "twin", "device": None, "depth": False, "exposure_us": None, "white_balance_k": None,
        }))
    return rig.model_copy(update={"arm": arm, "cameras": cameras, "randomization": RandomizationConfig()})


class MirrorTwin:
    """A twin of `rig` that follows measured joints and marker detections; not thread-safe, and
    rendering must stay on the thread that first rendered (the GL context's)."""

    def __init__(self, rig: RigConfig, task: str | None = None) -> None:
        self.rig = rig
        self.sim = TwinSim(mirror_rig(rig), task or rig.task.name)
        self.sim.reset(np.random.default_rng(0))  # objects rest at a drawn place until a marker is seen
        model = self.sim.model
        self.markers = {m.id: m for m in rig.mirror.markers}
        for marker in self.markers.values():
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, marker.body) < 0:
                raise ValueError(
                    f"rig '{rig.name}': mirror.markers id {marker.id}: no body '{marker.body}' in the twin of task '{self.sim.task.name}'"
                )
        self.detect_camera = rig.mirror.detect_camera if self.markers else None
        self.detector: MarkerDetector | None = None
        if self.detect_camera is not None:
            camera = next(c for c in self.sim.cameras + rig.cameras if c.name == self.detect_camera)
            if camera not in self.sim.cameras:
                raise ValueError(f"rig '{rig.name}': mirror.detect_camera '{camera.name}' has no calibrated pose")
            sizes = {m.id: m.size_m for m in self.markers.values()}
            self.detector = MarkerDetector(image_intrinsics(camera), rig.mirror.dictionary, sizes)

    @property
    def camera_names(self) -> list[str]:
        return [c.name for c in self.sim.cameras]

    def follow(self, joints: np.ndarray, gripper: float | None = None) -> None:
        """Put the arm at the measured joint angles (rad) and finger opening (0 closed .. 1 open)."""
        data, controller = self.sim.data, self.sim.controller
        data.qpos[controller.qpos_index] = np.asarray(joints, float)[: len(controller.qpos_index)]
        if gripper is not None:
            data.qpos[controller.finger_qpos] = float(np.clip(gripper, 0.0, 1.0)) * FINGER_MAX_OPENING
        data.qvel[:] = 0.0
        mujoco.mj_forward(self.sim.model, data)

    def camera_pose(self, name: str) -> np.ndarray:
        """A twin camera's pose in the base frame (4x4, OpenCV camera axes), after the latest `follow`."""
        index = self.sim.model.camera(name).id
        rotation = self.sim.data.cam_xmat[index].reshape(3, 3) @ CV_TO_MUJOCO
        return homogeneous(rotation, self.sim.data.cam_xpos[index])

    def place_from_image(self, image: np.ndarray) -> list[int]:
        """Move every body whose marker the detect camera sees to where it is seen; returns the ids seen.

        Call after `follow`: a wrist camera's pose depends on the arm.
        """
        if self.detector is None:
            return []
        seen = self.detector.detect(image)
        camera = self.camera_pose(self.detect_camera)
        for marker_id, marker_in_camera in seen.items():
            self.place(self.markers[marker_id], camera @ marker_in_camera)
        if seen:
            mujoco.mj_forward(self.sim.model, self.sim.data)
        return sorted(seen)

    def place(self, marker: MarkerConfig, marker_in_base: np.ndarray) -> None:
        """Put the marker's body where the marker is (its free joint, or its fixed place in the world)."""
        body_in_base = marker_in_base @ np.linalg.inv(homogeneous(np.eye(3), marker.offset))
        position = body_in_base[:3, 3]
        quat_wxyz = xyzw_to_wxyz(Rotation.from_matrix(body_in_base[:3, :3]).as_quat())
        model, data = self.sim.model, self.sim.data
        body = model.body(marker.body).id
        joint = model.body_jntadr[body]
        if joint >= 0 and model.jnt_type[joint] == mujoco.mjtJoint.mjJNT_FREE:
            address = model.jnt_qposadr[joint]
            data.qpos[address : address + 3] = position
            data.qpos[address + 3 : address + 7] = quat_wxyz
            data.qvel[model.jnt_dofadr[joint] : model.jnt_dofadr[joint] + 6] = 0.0
        else:
            model.body_pos[body] = position
            model.body_quat[body] = quat_wxyz

    def body_pose(self, body: str) -> np.ndarray:
        """Position + quaternion xyzw of a body in the base frame."""
        index = self.sim.model.body(body).id
        return np.concatenate([self.sim.data.xpos[index], wxyz_to_xyzw(self.sim.data.xquat[index])])

    def render(self, names: list[str] | None = None) -> dict[str, np.ndarray]:
        return self.sim.render(names)

    def score(self) -> Score:
        return self.sim.score()

    def task_state(self) -> dict[str, np.ndarray]:
        return self.sim.task_state()

    def close(self) -> None:
        self.sim.close()
