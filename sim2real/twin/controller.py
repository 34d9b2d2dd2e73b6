"""The twin's arm controller: Cartesian targets to joint impedance at physics rate.

Each control period the target TCP pose is turned into joint targets by damped
least-squares inverse kinematics (with a null-space pull toward the home posture); the
joint position actuators (stiffness + critical damping, gravity compensated) then track
those targets at the physics rate, inside MuJoCo. The targets are ramped linearly over the
period, as a real robot's interpolator does, so the arm moves smoothly and stays compliant
in contact. Keeping the per-step loop in C is what makes the twin fast.
"""

from __future__ import annotations

import mujoco
import numpy as np

from tether.sim2real.twin.robot import (
    ARM_ACTUATORS,
    ARM_JOINTS,
    FINGER_JOINTS,
    FINGER_MAX_OPENING,
    GRIPPER_ACTUATOR,
    TCP_SITE,
)
from tether.sim2real.twin.tasks import ROBOT_PREFIX

RAMP_CHUNKS = 5  # joint targets are updated this many times per control period


def mat_to_quat_xyzw(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrix to quaternion xyzw, with MuJoCo's fast routine (this runs every step)."""
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(matrix, dtype=float).ravel())
    return quat[[1, 2, 3, 0]]


class ArmController:
    """Drives the arm of a compiled twin model toward TCP targets."""

    def __init__(self, model: mujoco.MjModel, home_joints: np.ndarray, ik_iterations: int = 2) -> None:
        self.model = model
        joints = [model.joint(ROBOT_PREFIX + name) for name in ARM_JOINTS]
        self.qpos_index = np.array([model.jnt_qposadr[j.id] for j in joints])
        self.dof_index = np.array([model.jnt_dofadr[j.id] for j in joints])
        self.joint_low = np.array([model.jnt_range[j.id][0] for j in joints])
        self.joint_high = np.array([model.jnt_range[j.id][1] for j in joints])
        self.actuators = np.array([model.actuator(ROBOT_PREFIX + name).id for name in ARM_ACTUATORS])
        self.gripper_actuator = model.actuator(ROBOT_PREFIX + GRIPPER_ACTUATOR).id
        self.finger_qpos = np.array(
            [model.jnt_qposadr[model.joint(ROBOT_PREFIX + name).id] for name in FINGER_JOINTS]
        )
        self.tcp = model.site(ROBOT_PREFIX + TCP_SITE).id
        self.home = np.asarray(home_joints, dtype=float)
        self.ik_iterations = ik_iterations
        self._scratch = mujoco.MjData(model)
        self._jac = np.zeros((6, model.nv))
        self._quat = np.zeros(4)
        self._err_rot = np.zeros(3)
        self._ramp_from = self._ramp_to = self.home.copy()
        self._ramp_start = 0.0
        self._ramp_s = 0.1

    # --- state ------------------------------------------------------------------------

    def tcp_pose(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """TCP position and rotation matrix in the base frame."""
        return data.site_xpos[self.tcp].copy(), data.site_xmat[self.tcp].reshape(3, 3).copy()

    def tcp_velocity(self, data: mujoco.MjData) -> np.ndarray:
        """Linear then angular TCP velocity in the base frame."""
        velocity = np.zeros(6)
        mujoco.mj_objectVelocity(self.model, data, mujoco.mjtObj.mjOBJ_SITE, self.tcp, velocity, 0)
        return np.concatenate([velocity[3:], velocity[:3]])

    def gripper_opening(self, data: mujoco.MjData) -> float:
        """Finger opening in [0, 1], 1 = fully open."""
        return float(np.clip(data.qpos[self.finger_qpos].mean() / FINGER_MAX_OPENING, 0.0, 1.0))

    # --- inverse kinematics -----------------------------------------------------------

    def solve_ik(self, q_start: np.ndarray, target_pos: np.ndarray, target_mat: np.ndarray) -> np.ndarray:
        """Joint angles that put the TCP at the target, starting from `q_start`."""
        data = self._scratch
        q = q_start.copy()
        target_quat = np.zeros(4)
        mujoco.mju_mat2Quat(target_quat, target_mat.ravel())
        for _ in range(self.ik_iterations):
            data.qpos[self.qpos_index] = q
            mujoco.mj_kinematics(self.model, data)
            mujoco.mj_comPos(self.model, data)
            mujoco.mj_jacSite(self.model, data, self._jac[:3], self._jac[3:], self.tcp)
            jac = self._jac[:, self.dof_index]
            mujoco.mju_mat2Quat(self._quat, data.site_xmat[self.tcp])
            mujoco.mju_subQuat(self._err_rot, target_quat, self._quat)  # in the TCP frame
            error = np.concatenate(
                [target_pos - data.site_xpos[self.tcp], data.site_xmat[self.tcp].reshape(3, 3) @ self._err_rot]
            )
            jjt = jac @ jac.T
            jjt.flat[::7] += 1e-4  # damping keeps the step bounded near singularities
            # One solve for the task step and the null-space projection of the posture pull.
            posture = 0.2 * (self.home - q)
            solved = np.linalg.solve(jjt, np.stack([error, jac @ posture], axis=1))
            dq = jac.T @ solved[:, 0] + posture - jac.T @ solved[:, 1]
            q = np.clip(q + dq, self.joint_low, self.joint_high)
        return q

    # --- stepping ---------------------------------------------------------------------

    def hold(self, data: mujoco.MjData, q: np.ndarray, finger: float, target: np.ndarray | None = None) -> None:
        """Put the arm at `q` with joint targets `target` (default: `q` itself, as at reset)."""
        target = q if target is None else target
        data.qpos[self.qpos_index] = q
        data.qpos[self.finger_qpos] = finger
        data.ctrl[self.actuators] = target
        data.ctrl[self.gripper_actuator] = finger
        self._ramp_from = self._ramp_to = target.copy()
        self._ramp_start = data.time

    def command(self, data: mujoco.MjData, q_target: np.ndarray, finger_target: float, ramp_s: float) -> None:
        """New joint and finger targets; the joints ramp to theirs over `ramp_s` of sim time."""
        self._ramp_from = data.ctrl[self.actuators].copy()
        self._ramp_to = q_target.copy()
        self._ramp_start = data.time
        self._ramp_s = ramp_s
        data.ctrl[self.gripper_actuator] = finger_target

    def advance(self, data: mujoco.MjData, seconds: float) -> None:
        """Integrate `seconds` of physics, updating the ramped joint targets RAMP_CHUNKS times per ramp."""
        steps_left = int(round(seconds / self.model.opt.timestep))
        chunk = max(1, int(round(self._ramp_s / RAMP_CHUNKS / self.model.opt.timestep)))
        while steps_left > 0:
            alpha = min(1.0, (data.time - self._ramp_start) / self._ramp_s + 1.0 / RAMP_CHUNKS)
            data.ctrl[self.actuators] = (1 - alpha) * self._ramp_from + alpha * self._ramp_to
            n = min(chunk, steps_left)
            mujoco.mj_step(self.model, data, nstep=n)
            steps_left -= n
