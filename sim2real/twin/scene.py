"""Assembles the twin's MuJoCo model: table, lights, the robot, the task's objects and the rig's cameras."""

from __future__ import annotations

import mujoco
import numpy as np

from tether.config import CameraConfig, RigConfig, TwinArm
from tether.sim2real.twin.dynamics import apply_dynamics
from tether.sim2real.twin.render import OVERVIEW_SIZE
from tether.sim2real.twin.robot import HAND_BODY, robot_spec
from tether.sim2real.twin.tasks import ROBOT_PREFIX, Task
from tether.transforms import lookat_quat_xyzw, xyzw_to_wxyz

_WORLD_XML = """
<mujoco model="tether_twin">
  <compiler angle="radian" autolimits="true"/>
  <option integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <quality shadowsize="0"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.5 0.5 0.5" specular="0 0 0"/>
  </visual>
  <worldbody>
    <light name="top" pos="0.4 0 1.5" dir="0 0 -1" directional="true" diffuse="0.6 0.6 0.6"/>
    <geom name="floor" type="plane" pos="0 0 -0.75" size="3 3 0.1" rgba="0.35 0.37 0.4 1"/>
    <geom name="table" type="box" pos="0.45 0 -0.02" size="0.6 0.7 0.02" rgba="0.78 0.74 0.68 1"/>
  </worldbody>
</mujoco>
"""


def _camera_quat_wxyz(camera: CameraConfig) -> np.ndarray:
    pose = camera.pose
    assert pose is not None  # twin cameras are validated to have one
    if pose.quat is not None:
        return xyzw_to_wxyz(np.array(pose.quat))
    # World cameras keep the world's z up in the image; wrist cameras the hand's x.
    up = np.array([0.0, 0.0, 1.0]) if pose.mount == "world" else np.array([-1.0, 0.0, 0.0])
    return xyzw_to_wxyz(lookat_quat_xyzw(np.array(pose.pos), np.array(pose.lookat), up))


def build_model(rig: RigConfig, task: Task) -> mujoco.MjModel:
    """Compile the twin for a rig and a task. Cameras are named after the rig's cameras."""
    if not isinstance(rig.arm, TwinArm):
        raise ValueError(f"rig '{rig.name}': the twin needs arm.backend 'twin', got '{rig.arm.backend}'")
    spec = mujoco.MjSpec.from_string(_WORLD_XML)
    spec.geom("table").rgba = list(rig.twin_scene.table_rgba)
    spec.light("top").diffuse = [rig.twin_scene.light_diffuse] * 3
    spec.option.timestep = 1.0 / rig.arm.physics_rate_hz
    robot = robot_spec(rig.arm.model, rig.arm.joint_stiffness)
    apply_dynamics(robot, rig.twin_dynamics)
    spec.attach(robot, prefix=ROBOT_PREFIX, frame=spec.worldbody.add_frame())
    task.add_to_scene(spec)
    largest = [0, 0]
    for camera in rig.cameras:
        if camera.backend != "twin":
            continue
        pose = camera.pose
        parent = spec.worldbody if pose.mount == "world" else spec.body(ROBOT_PREFIX + HAND_BODY)
        parent.add_camera(name=camera.name, pos=list(pose.pos), quat=list(_camera_quat_wxyz(camera)), fovy=pose.fovy_deg)
        largest = [max(largest[0], camera.resolution[0]), max(largest[1], camera.resolution[1])]
    spec.visual.global_.offwidth = max(largest[0], OVERVIEW_SIZE[0])
    spec.visual.global_.offheight = max(largest[1], OVERVIEW_SIZE[1])
    return spec.compile()
