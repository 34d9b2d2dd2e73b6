"""The twin's physics and sensors, without episode logic.

`TwinSim` owns the compiled model, the controller, the task's objects and the cameras. It is
driven two ways: by the gymnasium env (one command, then one control period of physics,
per step) and by the ROS 2 twin node (commands arrive on topics while physics advances with
the clock). Both therefore move, sense and render the same way.
"""

from __future__ import annotations

import mujoco
import numpy as np

from tether import spaces
from tether.config import RigConfig, TwinArm
from tether.sim2real.twin.controller import ArmController, mat_to_quat_xyzw
from tether.sim2real.twin.randomize import DomainRandomizer, EpisodeDraw
from tether.sim2real.twin.render import CameraRenderer
from tether.sim2real.twin.robot import FINGER_MAX_OPENING
from tether.sim2real.twin.scene import build_model
from tether.sim2real.twin.tasks import ROBOT_PREFIX, Score, Task, make_task

SETTLE_S = 0.04  # physics after reset so contacts come to rest
PLACE_IK_ROUNDS = 5  # IK calls that converge the joint target of a placed arm


class TwinSim:
    """A twin of one rig and one task."""

    def __init__(self, rig: RigConfig, task: str) -> None:
        if not isinstance(rig.arm, TwinArm):
            raise ValueError(f"rig '{rig.name}': the twin needs arm.backend 'twin', got '{rig.arm.backend}'")
        self.rig = rig
        self.task: Task = make_task(task, rig.arm.workspace)
        self.model = build_model(rig, self.task)
        self.data = mujoco.MjData(self.model)
        self.task.bind(self.model)
        self.controller = ArmController(self.model, np.array(rig.arm.home_joints))
        self.cameras = [c for c in rig.cameras if c.backend == "twin"]
        self.randomizer = DomainRandomizer(
            self.model,
            rig.randomization,
            object_bodies=[b for b in range(1, self.model.nbody) if not self.model.body(b).name.startswith(ROBOT_PREFIX)],
            colored_geoms=[g for g in range(self.model.ngeom) if not self.model.geom(g).name.startswith("robot")],
            actuators=self.controller.actuators,
            arm_dofs=self.controller.dof_index,
        )
        self._renderer: CameraRenderer | None = None
        self._q_target = self.controller.home.copy()
        self._finger_target = FINGER_MAX_OPENING
        # The orientation the TCP holds when actions carry no rotation: its orientation at home.
        self.controller.hold(self.data, self.controller.home, FINGER_MAX_OPENING)
        mujoco.mj_forward(self.model, self.data)
        self.home_tcp_mat = self.controller.tcp_pose(self.data)[1]

    @property
    def time(self) -> float:
        return float(self.data.time)

    def reset(self, rng: np.random.Generator) -> EpisodeDraw:
        """Home the arm, draw randomisation and object poses, and let contacts settle."""
        mujoco.mj_resetData(self.model, self.data)
        draw = self.randomizer.apply(rng)
        hold = self.task.gripper_hold
        self._finger_target = hold if hold is not None else FINGER_MAX_OPENING
        self._q_target = self.controller.home.copy()
        self.controller.hold(self.data, self._q_target, self._finger_target)
        self.task.reset(self.model, self.data, rng, self.rig.randomization)
        self.controller.advance(self.data, SETTLE_S)
        return draw

    def place_arm(
        self, joints: np.ndarray, velocities: np.ndarray, tcp_position: np.ndarray, tcp_matrix: np.ndarray
    ) -> None:
        """Put the arm in a recorded state, its controller tracking the TCP target last sent (replay from mid-run)."""
        target = np.asarray(joints, float)
        for _ in range(PLACE_IK_ROUNDS):
            target = self.controller.solve_ik(target, tcp_position, tcp_matrix)
        finger = self.data.ctrl[self.controller.gripper_actuator]
        self.controller.hold(self.data, np.asarray(joints, float), finger, target)
        self.data.qvel[self.controller.dof_index] = velocities
        self._q_target = target
        mujoco.mj_forward(self.model, self.data)

    def command(self, tcp_position: np.ndarray, tcp_matrix: np.ndarray, gripper: int, ramp_s: float) -> None:
        """Track a TCP target (already checked and clipped) and a gripper command (+1 close, -1 open, 0 keep)."""
        self._q_target = self.controller.solve_ik(self._q_target, tcp_position, tcp_matrix)
        if self.task.gripper_hold is None and gripper:
            self._finger_target = 0.0 if gripper > 0 else FINGER_MAX_OPENING
        self.controller.command(self.data, self._q_target, self._finger_target, ramp_s)

    def advance(self, seconds: float) -> bool:
        """Integrate physics; returns False (and resets the data) if the simulation diverged."""
        self.controller.advance(self.data, seconds)
        if np.all(np.isfinite(self.data.qpos)):
            return True
        mujoco.mj_resetData(self.model, self.data)
        return False

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self.controller.tcp_pose(self.data)

    def proprio(self) -> dict[str, np.ndarray]:
        """Proprioception under the keys of tether.spaces, float64 (callers cast)."""
        position, rotation = self.controller.tcp_pose(self.data)
        return {
            spaces.TCP_POSE: np.concatenate([position, mat_to_quat_xyzw(rotation)]),
            spaces.TCP_VEL: self.controller.tcp_velocity(self.data),
            spaces.GRIPPER: np.array([self.controller.gripper_opening(self.data)]),
            spaces.JOINTS: self.data.qpos[self.controller.qpos_index].copy(),
        }

    def gripper_opening(self) -> float:
        return self.controller.gripper_opening(self.data)

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self.controller.dof_index].copy()

    def joint_efforts(self) -> np.ndarray:
        return self.data.actuator_force[self.controller.actuators].copy()

    def task_state(self) -> dict[str, np.ndarray]:
        """Privileged task state (object poses), for state-only policies and the scripted operator."""
        return self.task.state(self.model, self.data)

    def score(self) -> Score:
        return self.task.score(self.model, self.data)

    def render(self, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """One image per twin camera (or per named one), cropped and resized as the rig says."""
        if self._renderer is None:
            self._renderer = CameraRenderer(self.model, self.cameras)
        return self._renderer.render(self.data, names)

    def render_overview(self) -> np.ndarray:
        """The scene from a fixed viewpoint, for rigs without twin cameras."""
        if self._renderer is None:
            self._renderer = CameraRenderer(self.model, self.cameras)
        return self._renderer.overview(self.model, self.data)

    @property
    def renders(self) -> bool:
        return self._renderer is not None

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
