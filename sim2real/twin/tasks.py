"""Twin tasks: what is on the table, how an episode starts, and what counts as success.

A task adds its objects to the scene spec, places them at reset from the rig's object
ranges, exposes privileged state (used by state-only policies and the scripted operator),
and scores the state with named reward terms. The robot, controller and rendering live
elsewhere, so a task is only the part that differs between tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from tether.config import Box, RandomizationConfig, TwinArm
from tether.sim2real.twin.robot import FINGER_MAX_OPENING, HAND_BODY, TCP_SITE

ROBOT_PREFIX = "robot/"


@dataclass(frozen=True)
class Score:
    success: bool
    terms: dict[str, float]  # named dense reward terms, each in [0, 1]


def _yaw_quat_wxyz(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


class Task:
    """Base of the twin tasks. Subclasses fill in the scene, reset, state and score."""

    name: str = ""
    nominal_xy = np.array([0.5, 0.0])
    """Centre of the object's start region in the base frame (m)."""
    gripper_hold: float | None = None
    """Finger opening (m) the gripper is held at, ignoring gripper actions; None for a free gripper."""
    state_dims: dict[str, int] = {}
    perceived: tuple[str, ...] = ()
    """State keys a real rig estimates from its cameras (the object's pose, position first); they are measured
    together, so they go stale together when the object is out of view. The others are measured or commanded."""

    def __init__(self, workspace: Box | None = None) -> None:
        self.workspace = workspace if workspace is not None else TwinArm().workspace  # targets stay inside it

    def add_to_scene(self, spec: mujoco.MjSpec) -> None:
        raise NotImplementedError

    def bind(self, model: mujoco.MjModel) -> None:
        """Look up the ids this task needs by name, once per compiled model."""
        self._tcp = model.site(ROBOT_PREFIX + TCP_SITE).id
        self._hand = model.body(ROBOT_PREFIX + HAND_BODY).id

    def reset(
        self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator, ranges: RandomizationConfig
    ) -> None:
        raise NotImplementedError

    def state(self, model: mujoco.MjModel, data: mujoco.MjData) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def score(self, model: mujoco.MjModel, data: mujoco.MjData) -> Score:
        raise NotImplementedError

    def _sample_xy_yaw(self, rng: np.random.Generator, ranges: RandomizationConfig) -> tuple[np.ndarray, float]:
        offset = rng.uniform(ranges.object_xy.low, ranges.object_xy.high, size=2)
        yaw = float(rng.uniform(ranges.object_yaw.low, ranges.object_yaw.high))
        return self.nominal_xy + offset, yaw

    def tcp_pos(self, data: mujoco.MjData) -> np.ndarray:
        return data.site_xpos[self._tcp].copy()


class PickCube(Task):
    """Lift a cube from a random pose on the table to 10 cm above it."""

    name = "pick_cube"
    half_size = 0.025
    lift_height = 0.10
    state_dims = {"cube_pos": 3, "cube_quat": 4}
    perceived = ("cube_pos", "cube_quat")

    def add_to_scene(self, spec: mujoco.MjSpec) -> None:
        body = spec.worldbody.add_body(name="cube", pos=[*self.nominal_xy, self.half_size])
        body.add_freejoint(name="cube_joint")
        body.add_geom(
            name="cube",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[self.half_size] * 3,
            mass=0.1,
            rgba=[0.85, 0.2, 0.15, 1.0],
            friction=[1.0, 0.01, 0.001],
            condim=4,
        )

    def bind(self, model: mujoco.MjModel) -> None:
        super().bind(model)
        self._cube = model.body("cube").id
        self._qadr = model.jnt_qposadr[model.joint("cube_joint").id]

    def reset(self, model, data, rng, ranges) -> None:
        xy, yaw = self._sample_xy_yaw(rng, ranges)
        data.qpos[self._qadr : self._qadr + 3] = [*xy, self.half_size]
        data.qpos[self._qadr + 3 : self._qadr + 7] = _yaw_quat_wxyz(yaw)

    def state(self, model, data) -> dict[str, np.ndarray]:
        quat = data.xquat[self._cube]
        return {
            "cube_pos": data.xpos[self._cube].astype(np.float32),
            "cube_quat": quat[[1, 2, 3, 0]].astype(np.float32),
        }

    def score(self, model, data) -> Score:
        cube = data.xpos[self._cube]
        lifted = float(cube[2] - self.half_size)
        reach = 1.0 - np.tanh(10.0 * np.linalg.norm(self.tcp_pos(data) - cube))
        return Score(
            success=lifted >= self.lift_height,
            terms={"reach": float(reach), "lift": float(np.clip(lifted / self.lift_height, 0.0, 1.0))},
        )


class PegInsert(Task):
    """Insert a held square peg into a hole with 2 mm clearance per side (4 mm in all).

    The peg is held rigidly in the closed gripper, as on the real set-up where the fingers
    never open during the task; gripper actions are ignored.
    """

    name = "peg_insert"
    peg_half = 0.010
    peg_half_length = 0.040
    hole_half = 0.012
    board_height = 0.040
    wall = 0.019
    insert_depth = 0.025
    gripper_hold = peg_half
    state_dims = {"hole_pos": 3}

    @property
    def peg_tip_offset(self) -> float:
        """Distance from the TCP to the peg tip along the hand's z axis."""
        return 2 * self.peg_half_length - 0.02

    def add_to_scene(self, spec: mujoco.MjSpec) -> None:
        hand = spec.body(ROBOT_PREFIX + HAND_BODY)
        tcp_z = spec.site(ROBOT_PREFIX + TCP_SITE).pos[2]
        hand.add_geom(
            name="peg",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[self.peg_half, self.peg_half, self.peg_half_length],
            pos=[0, 0, tcp_z + self.peg_tip_offset - self.peg_half_length],
            rgba=[0.2, 0.45, 0.85, 1.0],
            contype=1,
            conaffinity=2,
            mass=0.05,
        )
        board = spec.worldbody.add_body(name="board", pos=[*self.nominal_xy, 0.0])
        h, w, z = self.hole_half, self.wall, self.board_height / 2
        walls = {  # name: (centre, half sizes); four boxes leave a square hole in the middle
            "left": ([-(h + w / 2), 0, z], [w / 2, h + w, z]),
            "right": ([h + w / 2, 0, z], [w / 2, h + w, z]),
            "front": ([0, -(h + w / 2), z], [h, w / 2, z]),
            "back": ([0, h + w / 2, z], [h, w / 2, z]),
        }
        for name, (pos, size) in walls.items():
            board.add_geom(
                name=f"board_{name}", type=mujoco.mjtGeom.mjGEOM_BOX, pos=pos, size=size, rgba=[0.55, 0.4, 0.25, 1]
            )

    def bind(self, model: mujoco.MjModel) -> None:
        super().bind(model)
        self._board = model.body("board").id

    def reset(self, model, data, rng, ranges) -> None:
        xy, _ = self._sample_xy_yaw(rng, ranges)  # the hole keeps its yaw: actions carry no rotation
        model.body_pos[self._board, :2] = xy

    def hole_top(self, model: mujoco.MjModel) -> np.ndarray:
        return np.array([*model.body_pos[self._board, :2], self.board_height])

    def peg_tip(self, data: mujoco.MjData) -> np.ndarray:
        hand_z = data.xmat[self._hand].reshape(3, 3)[:, 2]
        return self.tcp_pos(data) + self.peg_tip_offset * hand_z

    def state(self, model, data) -> dict[str, np.ndarray]:
        return {"hole_pos": self.hole_top(model).astype(np.float32)}

    def score(self, model, data) -> Score:
        tip, hole = self.peg_tip(data), self.hole_top(model)
        xy_error = float(np.linalg.norm(tip[:2] - hole[:2]))
        depth = float(hole[2] - tip[2])
        return Score(
            success=xy_error < self.hole_half and depth >= self.insert_depth,
            terms={
                "align": float(1.0 - np.tanh(20.0 * xy_error)),
                "insert": float(np.clip(depth / self.insert_depth, 0.0, 1.0)),
            },
        )


REACH_MARGIN = 0.05
"""Distance (m) the reach target keeps from every face of the workspace box (and so from the table)."""


def sample_reach_target(workspace: Box, rng: np.random.Generator, margin: float = REACH_MARGIN) -> np.ndarray:
    """A target drawn uniformly in the workspace box shrunk by `margin`; needs no model, so a real rig can draw it too."""
    low, high = np.array(workspace.low) + margin, np.array(workspace.high) - margin
    if np.any(low >= high):
        raise ValueError(f"workspace {list(workspace.low)}..{list(workspace.high)} is too small for a {margin} m margin")
    return rng.uniform(low, high)


class Reach(Task):
    """Move the TCP to a target point given in the observation; nothing on the table.

    The target is privileged state (`state/target_pos`), so the task runs unchanged on a rig
    without scene objects or cameras: the real side needs only the TCP position.
    """

    name = "reach"
    tolerance = 0.02
    """Distance (m) from TCP to target that counts as reached."""
    reach_scale = 0.2
    """Distance (m) over which the dense term falls from 1 to 0.24: wide enough that a 2 cm step pays anywhere in
    the box (at 30 cm it still moves the term by 0.02)."""
    gripper_hold = FINGER_MAX_OPENING
    state_dims = {"target_pos": 3}

    def add_to_scene(self, spec: mujoco.MjSpec) -> None:
        # A marker only: a site has no collision, so the table stays empty.
        spec.worldbody.add_site(
            name="target", type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[self.tolerance] * 3, rgba=[0.1, 0.8, 0.3, 0.5]
        )

    def bind(self, model: mujoco.MjModel) -> None:
        super().bind(model)
        self._target = model.site("target").id

    def reset(self, model, data, rng, ranges) -> None:
        model.site_pos[self._target] = sample_reach_target(self.workspace, rng)

    def target(self, model: mujoco.MjModel) -> np.ndarray:
        return model.site_pos[self._target].copy()

    def state(self, model, data) -> dict[str, np.ndarray]:
        return {"target_pos": self.target(model).astype(np.float32)}

    def score(self, model, data) -> Score:
        distance = float(np.linalg.norm(self.tcp_pos(data) - self.target(model)))
        return Score(success=distance <= self.tolerance, terms={"reach": float(1.0 - np.tanh(distance / self.reach_scale))})


TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (PickCube, PegInsert, Reach)}


def make_task(name: str, workspace: Box | None = None) -> Task:
    """A task by name; `workspace` is the rig's box (tasks that place targets use it)."""
    if name not in TASKS:
        raise ValueError(f"task '{name}': unknown (known: {', '.join(TASKS)})")
    return TASKS[name](workspace)


__all__ = [
    "FINGER_MAX_OPENING", "TASKS", "PegInsert", "PickCube", "Reach", "Score", "Task", "make_task", "sample_reach_target",
]
