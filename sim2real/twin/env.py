"""The twin as a gymnasium env: the same observations, actions and limits as the real arm node.

One `step` is one control period at the rig's rate. The action is an end-effector delta
(scaled by the rig's `action_scale`) plus a gripper command; it is checked and clipped by
`tether.safety` exactly as the arm node does (NaN/inf rejected and the arm held, speed
limited, target kept in the workspace box), then tracked by the joint impedance
controller at the physics rate.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import mujoco
import numpy as np

from tether import spaces
from tether.config import RigConfig, TwinArm, load_rig
from tether.safety import UnsafeCommand, check_finite, limit_norm, translation_target
from tether.sim2real.twin.controller import ArmController, mat_to_quat_xyzw
from tether.sim2real.twin.randomize import DomainRandomizer, EpisodeDraw
from tether.sim2real.twin.render import CameraRenderer
from tether.sim2real.twin.robot import FINGER_MAX_OPENING
from tether.sim2real.twin.scene import build_model
from tether.sim2real.twin.tasks import Task, make_task
from tether.transforms import apply_rotvec, quat_xyzw_to_matrix

ObsMode = Literal["state", "pixels"]
SETTLE_STEPS = 20  # physics steps after reset so contacts come to rest


class TwinEnv(gym.Env):
    """A twin task. `obs_mode='state'` adds privileged task state; 'pixels' adds camera images instead."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        task: str = "pick_cube",
        rig: str | Path | RigConfig = "twin_panda",
        obs_mode: ObsMode = "state",
        reward: Literal["sparse", "dense"] | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.rig = rig if isinstance(rig, RigConfig) else load_rig(rig)
        if not isinstance(self.rig.arm, TwinArm):
            raise ValueError(f"rig '{self.rig.name}': the twin needs arm.backend 'twin', got '{self.rig.arm.backend}'")
        if obs_mode not in ("state", "pixels"):
            raise ValueError(f"obs_mode '{obs_mode}': must be 'state' or 'pixels'")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode '{render_mode}': only 'rgb_array' is supported")
        self.task: Task = make_task(task)
        self.obs_mode = obs_mode
        self.render_mode = render_mode
        rig_reward = self.rig.task.reward
        self.reward_mode = reward or (rig_reward if rig_reward in ("sparse", "dense") else "sparse")
        self.episode_length = self.rig.task.episode_length
        self.metadata = {**self.metadata, "render_fps": self.rig.arm.control_rate_hz}

        self.model = build_model(self.rig, self.task)
        self.data = mujoco.MjData(self.model)
        self.task.bind(self.model)
        self.controller = ArmController(self.model, np.array(self.rig.arm.home_joints))
        self.controller.set_rate(self.model.opt.timestep, self.rig.control_dt)
        self.twin_cameras = [c for c in self.rig.cameras if c.backend == "twin"]
        self.randomizer = DomainRandomizer(
            self.model,
            self.rig.randomization,
            object_bodies=[b for b in range(1, self.model.nbody) if not self.model.body(b).name.startswith("robot/")],
            colored_geoms=[g for g in range(self.model.ngeom) if not self.model.geom(g).name.startswith("robot")],
            actuators=self.controller.actuators,
            arm_dofs=self.controller.dof_index,
        )
        # Hold orientation: the TCP's orientation at the home posture (pointing down).
        self.controller.hold(self.data, self.controller.home, FINGER_MAX_OPENING)
        mujoco.mj_forward(self.model, self.data)
        self.home_tcp_mat = self.controller.tcp_pose(self.data)[1]

        self.action_space = spaces.action_space(self.rig)
        self.observation_space = spaces.observation_space(
            self.twin_cameras if obs_mode == "pixels" else [],
            extra_state=self.task.state_dims if obs_mode == "state" else None,
        )
        self._renderer: CameraRenderer | None = None
        self._draw = EpisodeDraw(action_latency=0, obs_noise_std=0.0)
        self._pending: deque[np.ndarray] = deque()
        self._q_target = self.controller.home.copy()
        self._tcp_target = np.zeros(3)
        self._finger_target = FINGER_MAX_OPENING
        self._steps = 0

    # --- gymnasium API ----------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        mujoco.mj_resetData(self.model, self.data)
        self._draw = self.randomizer.apply(rng)
        self._finger_target = self.task.gripper_hold if self.task.gripper_hold is not None else FINGER_MAX_OPENING
        self._q_target = self.controller.home.copy()
        self.controller.hold(self.data, self._q_target, self._finger_target)
        self.task.reset(self.model, self.data, rng, self.rig.randomization)
        mujoco.mj_step(self.model, self.data, nstep=SETTLE_STEPS)
        self._tcp_target = self.controller.tcp_pose(self.data)[0]
        hold = np.zeros(self.action_space.shape, dtype=np.float32)
        self._pending = deque([hold] * self._draw.action_latency)
        self._steps = 0
        return self._observation(), self._info(self.task.score(self.model, self.data), rejected=False)

    def step(self, action: np.ndarray):
        rejected = False
        try:
            command = check_finite(action, "action")
        except UnsafeCommand:
            rejected = True  # the arm node holds on a non-finite command; so does the twin
            command = np.zeros(self.action_space.shape)
        self._pending.append(np.clip(command, -1.0, 1.0))
        applied = self._pending.popleft()
        self._apply(applied)
        self._steps += 1

        score = self.task.score(self.model, self.data)
        diverged = not np.all(np.isfinite(self.data.qpos))
        if diverged:
            mujoco.mj_resetData(self.model, self.data)  # keep observations finite for the caller
        if self.reward_mode == "dense":
            reward = float(np.mean(list(score.terms.values()))) + float(score.success)
        else:
            reward = float(score.success)
        terminated = bool(score.success or diverged)
        truncated = self._steps >= self.episode_length and not terminated
        info = self._info(score, rejected)
        info["physics_diverged"] = diverged
        return self._observation(), reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or not self.twin_cameras:
            return None
        return self._images()[self.twin_cameras[0].name]

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # --- internals --------------------------------------------------------------------

    def _apply(self, action: np.ndarray) -> None:
        arm = self.rig.arm
        position, rotation = self.controller.tcp_pose(self.data)
        self._tcp_target = translation_target(
            position,
            self._tcp_target,
            action[:3] * arm.action_scale[0], arm.workspace, arm.max_linear_speed, self.rig.control_dt
        )
        if arm.rotation_actions:
            rotvec = limit_norm(action[3:6] * arm.action_scale[1], arm.max_angular_speed * self.rig.control_dt)
            target_mat = quat_xyzw_to_matrix(apply_rotvec(mat_to_quat_xyzw(rotation), rotvec))
        else:
            target_mat = self.home_tcp_mat
        self._q_target = self.controller.solve_ik(self._q_target, self._tcp_target, target_mat)
        if self.task.gripper_hold is None:
            command = spaces.gripper_command(float(action[-1]))
            if command:
                self._finger_target = 0.0 if command > 0 else FINGER_MAX_OPENING
        self.controller.step(self.data, self._q_target, self._finger_target)

    def _images(self) -> dict[str, np.ndarray]:
        if self._renderer is None:
            self._renderer = CameraRenderer(self.model, self.twin_cameras)
        return self._renderer.render(self.data)

    def _observation(self) -> dict[str, np.ndarray]:
        position, rotation = self.controller.tcp_pose(self.data)
        state = {
            spaces.TCP_POSE: np.concatenate([position, mat_to_quat_xyzw(rotation)]),
            spaces.TCP_VEL: self.controller.tcp_velocity(self.data),
            spaces.GRIPPER: np.array([self.controller.gripper_opening(self.data)]),
            spaces.JOINTS: self.data.qpos[self.controller.qpos_index].copy(),
        }
        if self.obs_mode == "state":
            state.update({spaces.STATE + k: v for k, v in self.task.state(self.model, self.data).items()})
        noise = self._draw.obs_noise_std
        obs: dict[str, np.ndarray] = {}
        for key, value in state.items():
            if noise > 0:
                value = value + self.np_random.normal(0.0, noise, size=value.shape)
            obs[key] = np.asarray(value, dtype=np.float32)
        if self.obs_mode == "pixels":
            obs.update({spaces.image_key(name): image for name, image in self._images().items()})
        return obs

    def _info(self, score, rejected: bool) -> dict[str, Any]:
        return {"success": score.success, "reward_terms": dict(score.terms), "action_rejected": rejected}

    # --- privileged access for the scripted operator and tests ------------------------

    def tcp_position(self) -> np.ndarray:
        return self.controller.tcp_pose(self.data)[0]

    def gripper_opening(self) -> float:
        return self.controller.gripper_opening(self.data)

    def task_state(self) -> dict[str, np.ndarray]:
        return self.task.state(self.model, self.data)

