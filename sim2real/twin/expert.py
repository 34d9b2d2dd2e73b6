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

import gymnasium as gym

from tether.actions import ActionScale
from tether.config import ScriptedOperatorConfig
from tether.sim2real.twin.sim import TwinSim
from tether.sim2real.twin.tasks import PegInsert, PickCube, Reach

APPROACH_HEIGHT = 0.07  # m above the grasp / insertion point before descending
XY_TOLERANCE = 0.008  # m of horizontal error accepted before descending onto a cube
ALIGN_TOLERANCE = 0.0015  # m of horizontal error accepted before pushing the peg in (clearance: 2 mm)
GRASP_STEPS = 4  # control steps to wait with the gripper closing
EMPTY_GRIP = 0.1  # gripper opening below which the fingers closed on nothing
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

    def act(self, source: gym.Env | TwinSim) -> np.ndarray:
        """The operator's action for the twin's current state (a twin env or the twin itself)."""
        sim = source.unwrapped.sim if isinstance(source, gym.Env) else source
        if isinstance(sim.task, PickCube):
            action = self._pick_cube(sim)
        elif isinstance(sim.task, PegInsert):
            action = self._peg_insert(sim)
        elif isinstance(sim.task, Reach):
            action = self._reach(sim)
        else:
            raise ValueError(f"task '{sim.task.name}': the scripted operator has no plan for it")
        return self._imperfect(action, ActionScale.of_rig(sim.rig, sim.task.name))

    # --- plans ------------------------------------------------------------------------

    def _pick_cube(self, sim: TwinSim) -> np.ndarray:
        task: PickCube = sim.task
        tcp = sim.tcp_pose()[0]
        cube = sim.task_state()["cube_pos"].astype(float)
        opening = sim.gripper_opening()
        # Fingers stopped part-way near the cube: they are on it (a yawed cube stops them wider).
        holding = EMPTY_GRIP < opening < 0.95 and np.linalg.norm(tcp - cube) < 0.03
        if holding:
            self._closing_steps += 1
            if self._closing_steps < GRASP_STEPS:
                return self._move(tcp, tcp, gripper=1.0)
            lift_to = task.half_size + task.lift_height + 0.04
            return self._move(tcp, np.array([tcp[0], tcp[1], lift_to]), gripper=1.0)
        self._closing_steps = 0
        if opening <= EMPTY_GRIP:  # closed on nothing: open and try again
            return self._move(tcp, np.array([*tcp[:2], cube[2] + APPROACH_HEIGHT]), gripper=-1.0)
        above = np.array([cube[0], cube[1], cube[2] + APPROACH_HEIGHT])
        xy_error = np.linalg.norm(tcp[:2] - cube[:2])
        waypoint = self._detour_waypoint(tcp, above)
        if waypoint is not None:
            return self._move(tcp, waypoint, gripper=-1.0)
        if xy_error > XY_TOLERANCE and tcp[2] > cube[2] + 0.02:
            # Line up over the cube first, at the height the arm is at; descend only once aligned. Only a miss by
            # more than 3 cm goes back up to the approach point.
            target = above if xy_error > 0.03 else np.array([*cube[:2], tcp[2]])
            return self._move(tcp, target, gripper=-1.0)
        at_grasp = abs(tcp[2] - cube[2]) < 0.006 and xy_error < 0.01
        return self._move(tcp, cube, gripper=1.0 if at_grasp else -1.0)

    def _peg_insert(self, sim: TwinSim) -> np.ndarray:
        task: PegInsert = sim.task
        tcp = sim.tcp_pose()[0]
        hole = sim.task_state()["hole_pos"].astype(float)
        tip_to_tcp = task.peg_tip_offset
        above = np.array([hole[0], hole[1], hole[2] + APPROACH_HEIGHT + tip_to_tcp])
        waypoint = self._detour_waypoint(tcp, above)
        if waypoint is not None:
            return self._move(tcp, waypoint, gripper=1.0)
        xy_error = np.linalg.norm(tcp[:2] - hole[:2])
        tip_height = tcp[2] - tip_to_tcp - hole[2]
        inserted = tip_height < -0.003
        if not inserted and xy_error > ALIGN_TOLERANCE:
            # Hover while aligning: lift off the board's top if the tip rests on it (pressing
            # down there only adds friction), and stay higher while far off.
            hover = hole[2] + tip_to_tcp + (0.008 if xy_error < 0.01 else 0.02)
            return self._move(tcp, np.array([hole[0], hole[1], max(tcp[2], hover)]), gripper=1.0)
        bottom = np.array([hole[0], hole[1], hole[2] + tip_to_tcp - task.insert_depth - 0.01])
        return self._move(tcp, bottom, gripper=1.0, slow=True)

    def _reach(self, sim: TwinSim) -> np.ndarray:
        tcp = sim.tcp_pose()[0]
        target = sim.task_state()["target_pos"].astype(float)
        waypoint = self._detour_waypoint(tcp, target)
        if waypoint is not None:
            return self._move(tcp, waypoint, gripper=-1.0)
        return self._move(tcp, target, gripper=-1.0)

    # --- shaping ----------------------------------------------------------------------

    def _detour_waypoint(self, tcp: np.ndarray, approach: np.ndarray) -> np.ndarray | None:
        """The approach point shifted by this episode's detour while the detour lasts; None once it is reached or
        the arm is already below it. The detour is how the operator's own approach from above wanders: taking over
        from a policy that brought the arm lower, it must not send the arm back up to a waypoint it never drove to."""
        if self._detour_done:
            return None
        waypoint = approach + np.array([*self._detour, 0.0])
        if np.linalg.norm(tcp - waypoint) < 0.015 or tcp[2] < waypoint[2] - 0.01:
            self._detour_done = True
            return None
        return waypoint

    def _move(self, tcp: np.ndarray, target: np.ndarray, gripper: float, slow: bool = False) -> np.ndarray:
        gain = self.config.gain * (0.5 if slow else 1.0)
        motion = np.clip(gain * (target - tcp), -1.0, 1.0)
        return np.concatenate([motion, [gripper]])

    def _imperfect(self, action: np.ndarray, layout: ActionScale) -> np.ndarray:
        """Noise and pauses on the motion, in the task's action layout; the gripper command stays as decided.

        The noise grows with the speed of the move (signal-dependent, as in human motor
        control): fast approaches wander, fine alignment stays fine.
        """
        out = np.zeros(layout.dim, dtype=np.float32)
        motion = action[:3]
        if self.rng.random() < self.config.hesitate_prob:
            motion = np.zeros(3)
        scale = max(float(np.abs(motion).max()), MIN_NOISE_SCALE)
        motion = motion + self.rng.normal(0.0, self.config.noise_std * scale, size=3)
        out[:3] = np.clip(motion, -1.0, 1.0)
        if layout.gripper:
            out[-1] = action[-1]
        return out


def run_episode(env: gym.Env, operator: ScriptedOperator, seed: int, recorder=None) -> tuple[bool, int]:
    """Roll out the operator for one episode (into `recorder`, a StoreRecorder, if given); returns (success, length)."""
    obs, _ = env.reset(seed=seed)
    operator.reset()
    if recorder is not None:
        recorder.begin(seed)
    for step in range(1, env.unwrapped.episode_length + 1):
        action = operator.act(env)
        next_obs, reward, terminated, truncated, info = env.step(action)
        if recorder is not None:
            recorder.step(obs, action, reward, terminated, truncated, intervened=True)
        obs = next_obs
        if terminated or truncated:
            break
    success = bool(info["success"])
    if recorder is not None:
        recorder.end(success, final_obs=obs)
    return success, step
