"""The rig's `twin_dynamics` written into the robot's MJCF spec before compiling.

Applied to the spec rather than the compiled model so MuJoCo itself turns the damping ratio
into joint-controller damping (it needs the compiled inertia, armature included), and so the
domain randomiser's nominal values already carry the identified dynamics.
"""

from __future__ import annotations

import mujoco
import numpy as np

from tether.config import TwinDynamics
from tether.sim2real.twin.robot import ARM_ACTUATORS, ARM_JOINTS


def apply_dynamics(robot: mujoco.MjSpec, dynamics: TwinDynamics) -> None:
    """Set joint damping, armature, friction and the joint controllers' gains of the arm in `robot`."""
    for name in ARM_JOINTS:
        joint = robot.joint(name)
        if dynamics.joint_damping is not None:
            joint.damping[0] = dynamics.joint_damping
        if dynamics.joint_armature is not None:
            joint.armature = dynamics.joint_armature
        if dynamics.joint_friction is not None:
            joint.frictionloss = dynamics.joint_friction
    for name in ARM_ACTUATORS:
        actuator = robot.actuator(name)
        # A position actuator: force = kp * ctrl - kp * q - kv * qdot; a positive third bias
        # parameter is a damping ratio, which the compiler turns into kv.
        actuator.gainprm[0] *= dynamics.stiffness_scale
        actuator.biasprm[1] *= dynamics.stiffness_scale
        actuator.biasprm[2] = dynamics.damping_ratio


def effective_dynamics(model: mujoco.MjModel, dofs: np.ndarray, dynamics: TwinDynamics) -> TwinDynamics:
    """`dynamics` with every None replaced by the value the compiled model uses (the mean over the
    arm's joints): the concrete starting point of a fit."""
    return dynamics.model_copy(
        update={
            "joint_damping": float(np.mean(model.dof_damping[dofs])),
            "joint_armature": float(np.mean(model.dof_armature[dofs])),
            "joint_friction": float(np.mean(model.dof_frictionloss[dofs])),
        }
    )
