"""The scripted operator: a closed-loop expert that stands in for the human in the twin.

It reads privileged twin state (object poses, the TCP) and answers in the normal action
space, so its actions can be recorded as demonstrations, used as interventions, or
compared with a policy's. Like a person it is imperfect on purpose: Gaussian action noise,
occasional pauses, and approach moves that overshoot a randomly offset waypoint before
correcting. Each task has a short plan of phases; the phase is re-derived from the state
every step, so the operator recovers when a grasp slips or the policy left the arm elsewhere.
"""

from __future__ import annotations

import numpy as np

from tether.config import ScriptedOperatorConfig
from tether.sim2real.twin.env import TwinEnv
from tether.sim2real.twin.tasks import PegInsert, PickCube

APPROACH_HEIGHT = 0.07  # m above the grasp / insertion point before descending
XY_TOLERANCE = 0.008  # m of horizontal error accepted before descending
GRASP_STEPS = 4  # control steps to wait with the gripper closing
MIN_NOISE_SCALE = 0.1  # fraction of the full noise left when the operator barely moves


class ScriptedOperator:
    """Closed-loop expert for the twin tasks. `act(env)` returns one action in [-1, 1]."""

    def __init__(self, config: ScriptedOperatorConfig | None = None, seed: int = 0) -> None:
        self.config = config or ScriptedOperatorConfig()
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        """Start a new episode: new detour offset, grasp counter cleared."""
        magnitude = self.config.overshoot * 0.1
        self._detour = self.rng.uniform(-magnitude, magnitude, size=2)
        self._detour_done = magnitude == 0.0
        self._closing_steps = 0

    def act(self, env: TwinEnv) -> np.ndarray:
        env = env.unwrapped
        if isinstance(env.task, PickCube):
            action = self._pick_cube(env)
        elif isinstance(env.task, PegInsert):
            action = self._peg_insert(env)
        else:
            raise ValueError(f"task '{env.task.name}': the scripted operator has no plan for it")
        return self._imperfect(action, env.action_space.shape[0])

    # --- plans ------------------------------------------------------------------------

    def _pick_cube(self, env: TwinEnv) -> np.ndarray:
        task: PickCube = env.task
        tcp = env.tcp_position()
        cube = env.task_state()["cube_pos"].astype(float)
        holding = env.gripper_opening() < 0.8 and np.linalg.norm(tcp - cube) < 0.03
        if holding:
            self._closing_steps += 1
            if self._closing_steps < GRASP_STEPS:
                return self._move(tcp, tcp, gripper=1.0)
            lift = np.array([cube[0], cube[1], task.half_size + task.lift_height + 0.04])
            return self._move(tcp, np.array([tcp[0], tcp[1], lift[2]]), gripper=1.0)
        self._closing_steps = 0
        above = np.array([cube[0], cube[1], cube[2] + APPROACH_HEIGHT])
        xy_error = np.linalg.norm(tcp[:2] - cube[:2])
        if not self._detour_done:
            waypoint = above + np.array([*self._detour, 0.0])
            if np.linalg.norm(tcp - waypoint) < 0.015:
                self._detour_done = True
            return self._move(tcp, waypoint, gripper=-1.0)
        if xy_error > XY_TOLERANCE and tcp[2] > cube[2] + 0.02:
            # Line up above the cube first; descend only once aligned.
            target = above if tcp[2] < above[2] - 0.01 or xy_error > 0.03 else np.array([*cube[:2], tcp[2]])
            return self._move(tcp, target, gripper=-1.0)
        at_grasp = abs(tcp[2] - cube[2]) < 0.006 and xy_error < 0.01
        return self._move(tcp, cube, gripper=1.0 if at_grasp else -1.0)

    def _peg_insert(self, env: TwinEnv) -> np.ndarray:
        task: PegInsert = env.task
        tcp = env.tcp_position()
        hole = env.task_state()["hole_pos"].astype(float)
        tip_to_tcp = task.peg_tip_offset
        above = np.array([hole[0], hole[1], hole[2] + APPROACH_HEIGHT + tip_to_tcp])
        if not self._detour_done:
            waypoint = above + np.array([*self._detour, 0.0])
            if np.linalg.norm(tcp - waypoint) < 0.015:
                self._detour_done = True
            return self._move(tcp, waypoint, gripper=1.0)
        xy_error = np.linalg.norm(tcp[:2] - hole[:2])
        tip_height = tcp[2] - tip_to_tcp - hole[2]
        if tip_height > 0.005 and xy_error > 0.002:
            # Hover while aligning; never drag the peg across the board's top.
            height = max(tcp[2], hole[2] + tip_to_tcp + 0.01) if xy_error > 0.01 else tcp[2]
            return self._move(tcp, np.array([hole[0], hole[1], height]), gripper=1.0)
        bottom = np.array([hole[0], hole[1], hole[2] + tip_to_tcp - task.insert_depth - 0.01])
        return self._move(tcp, bottom, gripper=1.0, slow=True)

    # --- shaping ----------------------------------------------------------------------

    def _move(self, tcp: np.ndarray, target: np.ndarray, gripper: float, slow: bool = False) -> np.ndarray:
        gain = self.config.gain * (0.5 if slow else 1.0)
        motion = np.clip(gain * (target - tcp), -1.0, 1.0)
        return np.concatenate([motion, [gripper]])

    def _imperfect(self, action: np.ndarray, action_dim: int) -> np.ndarray:
        """Noise and pauses on the motion; the gripper command stays as decided.

        The noise grows with the speed of the move (signal-dependent, as in human motor
        control): fast approaches wander, fine alignment stays fine.
        """
        out = np.zeros(action_dim, dtype=np.float32)
        motion = action[:3]
        if self.rng.random() < self.config.hesitate_prob:
            motion = np.zeros(3)
        scale = max(float(np.abs(motion).max()), MIN_NOISE_SCALE)
        motion = motion + self.rng.normal(0.0, self.config.noise_std * scale, size=3)
        out[:3] = np.clip(motion, -1.0, 1.0)
        out[-1] = action[-1]
        return out


def run_episode(env: TwinEnv, operator: ScriptedOperator, seed: int) -> tuple[bool, int]:
    """Roll out the operator for one episode; returns (success, length)."""
    env.reset(seed=seed)
    operator.reset()
    for step in range(1, env.unwrapped.episode_length + 1):
        _, _, terminated, truncated, info = env.step(operator.act(env))
        if terminated or truncated:
            return bool(info["success"]), step
    return False, env.unwrapped.episode_length
