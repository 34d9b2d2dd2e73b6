"""The twin as a gymnasium env: the same observations, actions and limits as the real arm node.

One `step` is one control period at the rig's rate. The action is an end-effector delta
(scaled by the rig's `action_scale`) plus, unless the task holds the gripper still, a gripper
command (`tether.actions`); it is checked and clipped by
`tether.safety` exactly as the arm node does (NaN/inf rejected and the arm held, speed
limited, target kept in the workspace box), then tracked by the twin's joint impedance
controller at the physics rate.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from tether import spaces
from tether.actions import ActionScale, gripper_part
from tether.config import RandomizationConfig, RigConfig, load_rig
from tether.safety import UnsafeCommand, check_finite, limit_norm, translation_target
from tether.sim2real.twin.randomize import EpisodeDraw
from tether.sim2real.twin.sim import TwinSim
from tether.sim2real.twin.tasks import Score
from tether.transforms import apply_rotvec, quat_xyzw_to_matrix

ObsMode = Literal["state", "pixels", "all"]
IMAGE_MODES = ("pixels", "all")
TASK_STATE_MODES = ("state", "all")


class TwinEnv(gym.Env):
    """A twin task. Beside proprioception, `obs_mode` 'state' adds privileged task state, 'pixels' camera
    images, and 'all' both (for recording demonstrations that serve either kind of learner)."""

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
        if obs_mode not in ("state", "pixels", "all"):
            raise ValueError(f"obs_mode '{obs_mode}': must be 'state', 'pixels' or 'all'")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode '{render_mode}': only 'rgb_array' is supported")
        self.sim = TwinSim(self.rig, task)
        self.task = self.sim.task
        self.obs_mode = obs_mode
        self.render_mode = render_mode
        rig_reward = self.rig.task.reward
        self.reward_mode = reward or (rig_reward if rig_reward in ("sparse", "dense") else "sparse")
        self.episode_length = self.rig.task.episode_length
        self.metadata = {**self.metadata, "render_fps": self.rig.arm.control_rate_hz}
        self.action_scale = ActionScale.of_rig(self.rig, task)
        self.action_space = spaces.action_space(self.rig, task)
        self.observation_space = spaces.observation_space(
            self.sim.cameras if obs_mode in IMAGE_MODES else [],
            extra_state=self.task.state_dims if obs_mode in TASK_STATE_MODES else None,
            gripper=self.action_scale.gripper,
        )
        self._draw = EpisodeDraw(action_latency=0, obs_noise_std=0.0)
        self._pending: deque[np.ndarray] = deque()
        self._perceived: dict[str, np.ndarray] = {}  # the last estimate of each perceived key, held while unseen
        self._tcp_target = np.zeros(3)
        self._steps = 0

    # --- gymnasium API ----------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._draw = self.sim.reset(self.np_random)
        self._tcp_target = self.sim.tcp_pose()[0]
        hold = np.zeros(self.action_space.shape, dtype=np.float32)
        latency = self._draw.action_latency + self.rig.twin_dynamics.command_latency_steps
        self._pending = deque([hold] * latency)
        self._perceived = {}
        self._steps = 0
        return self._observation(), self._info(self.sim.score(), rejected=False)

    def step(self, action: np.ndarray):
        if np.shape(action) != self.action_space.shape:  # e.g. a policy of another layout: refuse, never misread
            raise ValueError(f"action of shape {np.shape(action)}: this env takes {self.action_space.shape}")
        rejected = False
        try:
            command = check_finite(action, "action")
        except UnsafeCommand:
            rejected = True  # the arm node holds on a non-finite command; so does the twin
            command = np.zeros(self.action_space.shape)
        self._pending.append(np.clip(command, -1.0, 1.0))
        self._apply(self._pending.popleft())
        diverged = not self.sim.advance(self.rig.control_dt)
        self._steps += 1

        score = self.sim.score()
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
        if self.render_mode != "rgb_array":
            return None
        if not self.sim.cameras:
            return self.sim.render_overview()
        return self.sim.render()[self.sim.cameras[0].name]

    def set_randomization(self, ranges: RandomizationConfig) -> None:
        """Randomisation ranges for the following resets (profiles, curriculum); callable through a vector env."""
        self.sim.randomizer.config = ranges

    def close(self) -> None:
        self.sim.close()

    # --- internals --------------------------------------------------------------------

    def _apply(self, action: np.ndarray) -> None:
        arm, dt = self.rig.arm, self.rig.control_dt
        step = self.action_scale.to_step(action)
        position, rotation = self.sim.tcp_pose()
        self._tcp_target = translation_target(
            position, self._tcp_target, step[:3], arm.workspace, arm.max_linear_speed, dt
        )
        if arm.rotation_actions:
            rotvec = limit_norm(step[3:], arm.max_angular_speed * dt)
            target_matrix = quat_xyzw_to_matrix(apply_rotvec(self.sim.proprio()[spaces.TCP_POSE][3:], rotvec))
        else:
            target_matrix = self.sim.home_tcp_mat
        gripper = gripper_part(action)
        self.sim.command(self._tcp_target, target_matrix, 0 if gripper is None else spaces.gripper_command(gripper),
                         ramp_s=dt)

    def _observation(self) -> dict[str, np.ndarray]:
        state = {k: v for k, v in self.sim.proprio().items() if k in self.observation_space.spaces}
        if self.obs_mode in TASK_STATE_MODES:
            state.update({spaces.STATE + k: v for k, v in self._perceive(self.sim.task_state()).items()})
        noise = self._draw.obs_noise_std
        obs: dict[str, np.ndarray] = {}
        for key, value in state.items():
            if noise > 0:
                value = value + self.np_random.normal(0.0, noise, size=value.shape)
            obs[key] = np.asarray(value, dtype=np.float32)
        if self.obs_mode in IMAGE_MODES:
            obs.update({spaces.image_key(name): image for name, image in self.sim.render().items()})
        return obs

    def _perceive(self, task_state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The task state as a camera estimator on a real rig reports it: the perceived keys (an object's pose)
        repeat their last estimate when the object goes unseen this step, else are re-measured with an error on
        the position. The first step of an episode always sees the object."""
        keys, draw = self.task.perceived, self._draw
        if not keys:
            return task_state
        if self._perceived and draw.object_dropout > 0 and self.np_random.random() < draw.object_dropout:
            return {**task_state, **self._perceived}
        seen = {k: task_state[k] for k in keys}
        if draw.object_pos_noise_std > 0:
            position = keys[0]
            seen[position] = seen[position] + self.np_random.normal(0.0, draw.object_pos_noise_std, size=3)
        self._perceived = seen
        return {**task_state, **seen}

    def _info(self, score: Score, rejected: bool) -> dict[str, Any]:
        return {"success": score.success, "reward_terms": dict(score.terms), "action_rejected": rejected}
