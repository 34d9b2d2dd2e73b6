"""The twin's robot: a 7-DoF arm with Franka Panda kinematics and a parallel gripper.

Built from primitive geometry (capsules and boxes). Link offsets and joint limits are
Franka's published kinematic parameters; masses are the published per-link values rounded.
The shape only needs to be close enough for collisions and camera views; kinematics,
limits and the TCP are what a policy feels.

Any robot MJCF (the built-in one or a user's own, see `TwinArm.model`) must define:
  hinge joints `joint1` .. `joint7` with position actuators `actuator1` .. `actuator7`,
  finger slide joints `finger_left`, `finger_right` (0 = closed, positive = open),
  a position actuator `gripper` whose control is one finger's opening in metres,
  a body `hand` (the wrist camera mounts on it) and a site `tcp` between the finger pads.
"""

from __future__ import annotations

import mujoco

ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
ARM_ACTUATORS = tuple(f"actuator{i}" for i in range(1, 8))
FINGER_JOINTS = ("finger_left", "finger_right")
GRIPPER_ACTUATOR = "gripper"
HAND_BODY = "hand"
TCP_SITE = "tcp"

FINGER_MAX_OPENING = 0.04  # m per finger
TCP_OFFSET = 0.1034  # m from the flange along the hand's z axis

# Franka Panda joint limits (rad).
JOINT_LIMITS = (
    (-2.8973, 2.8973),
    (-1.7628, 1.7628),
    (-2.8973, 2.8973),
    (-3.0718, -0.0698),
    (-2.8973, 2.8973),
    (-0.0175, 3.7525),
    (-2.8973, 2.8973),
)
# Joint-space torque limits (N m) of the Panda.
TORQUE_LIMITS = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)

# Each link: (body pos in parent, body quat wxyz in parent, mass kg, capsule segments in link frame).
# Offsets follow the Panda's modified DH table: d1=0.333, d3=0.316, a4=0.0825, a5=-0.0825,
# d5=0.384, a7=0.088, flange d=0.107.
_Q_NEG_X = "0.7071068 -0.7071068 0 0"  # -90 deg about x
_Q_POS_X = "0.7071068 0.7071068 0 0"  # +90 deg about x
_LINKS = (
    ("0 0 0.333", "1 0 0 0", 4.97, ((0, 0, -0.19, 0, 0, -0.03, 0.060),)),
    ("0 0 0", _Q_NEG_X, 0.65, ((0, 0, 0, 0, -0.17, 0, 0.060),)),
    ("0 -0.316 0", _Q_POS_X, 3.23, ((0, 0, -0.14, 0, 0, -0.03, 0.055), (0, 0, 0, 0.0825, 0, 0, 0.055))),
    ("0.0825 0 0", _Q_POS_X, 3.59, ((0, 0, 0, -0.0825, 0.06, 0, 0.055),)),
    ("-0.0825 0.384 0", _Q_NEG_X, 1.23, ((0, 0, -0.28, 0, 0, -0.05, 0.050),)),
    ("0 0 0", _Q_POS_X, 1.67, ((0, 0, 0, 0.088, 0, 0, 0.045),)),
    ("0.088 0 0", _Q_POS_X, 0.74, ((0, 0, 0.0, 0, 0, 0.09, 0.040),)),
)


def _link_xml(index: int) -> str:
    pos, quat, mass, segments = _LINKS[index]
    low, high = JOINT_LIMITS[index]
    geoms = "".join(
        f'<geom type="capsule" fromto="{x0} {y0} {z0} {x1} {y1} {z1}" size="{r}" class="link"/>'
        for x0, y0, z0, x1, y1, z1, r in segments
    )
    return (
        f'<body name="link{index + 1}" pos="{pos}" quat="{quat}" gravcomp="1">'
        f'<inertial pos="0 0 0" mass="{mass}" diaginertia="{mass * 0.004} {mass * 0.004} {mass * 0.003}"/>'
        f'<joint name="joint{index + 1}" range="{low} {high}"/>{geoms}'
    )


def _hand_xml() -> str:
    pad = 'type="box" size="0.010 0.006 0.020" class="pad"'
    return (
        # The hand is turned -45 deg about the flange axis, as on the Panda.
        '<body name="hand" pos="0 0 0.107" quat="0.9238795 0 0 -0.3826834" gravcomp="1">'
        '<inertial pos="0 0 0.04" mass="0.73" diaginertia="0.002 0.0005 0.002"/>'
        '<geom type="box" pos="0 0 0.03" size="0.025 0.095 0.028" class="link"/>'
        f'<site name="tcp" pos="0 0 {TCP_OFFSET}" size="0.005" rgba="1 0 0 0.5" group="3"/>'
        '<body name="left_finger" pos="0 0 0.0584" gravcomp="1">'
        '<inertial pos="0 0 0.03" mass="0.015" diaginertia="2e-5 2e-5 1e-5"/>'
        f'<joint name="finger_left" type="slide" axis="0 1 0" range="0 {FINGER_MAX_OPENING}" class="finger"/>'
        f'<geom {pad} pos="0 0.006 0.045"/>'
        '<geom type="box" size="0.010 0.010 0.012" pos="0 0.012 0.012" class="link"/>'
        "</body>"
        '<body name="right_finger" pos="0 0 0.0584" gravcomp="1">'
        '<inertial pos="0 0 0.03" mass="0.015" diaginertia="2e-5 2e-5 1e-5"/>'
        f'<joint name="finger_right" type="slide" axis="0 -1 0" range="0 {FINGER_MAX_OPENING}" class="finger"/>'
        f'<geom {pad} pos="0 -0.006 0.045"/>'
        '<geom type="box" size="0.010 0.010 0.012" pos="0 -0.012 0.012" class="link"/>'
        "</body>"
        "</body>"
    )


def panda_xml(joint_stiffness: float = 2000.0) -> str:
    """MJCF text of the built-in Panda; its base sits at the origin of the model."""
    links = "".join(_link_xml(i) for i in range(7))
    actuators = "".join(
        f'<position name="actuator{i + 1}" joint="joint{i + 1}" '
        f'kp="{joint_stiffness if i < 4 else joint_stiffness / 3:.1f}" dampratio="1" '
        f'forcerange="{-TORQUE_LIMITS[i]} {TORQUE_LIMITS[i]}" '
        f'ctrlrange="{JOINT_LIMITS[i][0]} {JOINT_LIMITS[i][1]}"/>'
        for i in range(7)
    )
    return f"""
<mujoco model="tether_panda">
  <compiler angle="radian" autolimits="true"/>
  <default>
    <joint type="hinge" axis="0 0 1" damping="2" armature="0.1"/>
    <!-- contype 1 / conaffinity 2: robot geoms touch the world (1/1) but never each other. -->
    <default class="link"><geom rgba="0.92 0.92 0.92 1" group="2" contype="1" conaffinity="2"/></default>
    <default class="pad">
      <geom rgba="0.25 0.25 0.25 1" contype="1" conaffinity="2" friction="1.5 0.01 0.001" condim="4" solref="0.004 1" priority="1"/>
    </default>
    <default class="finger"><joint damping="10" armature="0.01"/></default>
  </default>
  <worldbody>
    <body name="link0" gravcomp="1">
      <inertial pos="0 0 0.05" mass="2.9" diaginertia="0.01 0.01 0.01"/>
      <geom type="cylinder" fromto="0 0 0 0 0 0.14" size="0.07" class="link"/>
      {links}{_hand_xml()}{"</body>" * 7}
    </body>
  </worldbody>
  <equality>
    <joint joint1="finger_left" joint2="finger_right" polycoef="0 1 0 0 0" solref="0.005 1"/>
  </equality>
  <actuator>
    {actuators}
    <position name="gripper" joint="finger_left" kp="800" dampratio="1" forcerange="-70 70"
              ctrlrange="0 {FINGER_MAX_OPENING}"/>
  </actuator>
</mujoco>
"""


def robot_spec(model_path: str | None, joint_stiffness: float) -> mujoco.MjSpec:
    """The robot to attach to the scene: the built-in Panda, or a user's MJCF file."""
    if model_path is not None:
        return mujoco.MjSpec.from_file(str(model_path))
    return mujoco.MjSpec.from_string(panda_xml(joint_stiffness))
