"""A hardware arm backend driven from a plain loop at the control rate, without the ROS 2 graph.

What `tether sim excite` needs of a real rig: the same `ArmBackend` the arm node drives (the
targets it sends are already limited like the arm node's), read and commanded once per control
period, paced by the monotonic clock.
"""

from __future__ import annotations

import time

import numpy as np

from tether import spaces
from tether.robot_ws.interfaces import ArmBackend
from tether.sim2real.arm_log import JOINT_VEL


class PacedArm:
    """An `ExcitableArm` over a connected `ArmBackend`."""

    def __init__(self, backend: ArmBackend, period_s: float) -> None:
        self.backend = backend
        self.period_s = period_s
        self._deadline = time.monotonic() + period_s

    def read(self) -> tuple[dict[str, np.ndarray], float]:
        state = self.backend.state()
        return {
            spaces.TCP_POSE: state.tcp_pose,
            spaces.TCP_VEL: state.tcp_twist,
            spaces.GRIPPER: np.array([state.gripper]),
            spaces.JOINTS: state.joint_positions,
            JOINT_VEL: state.joint_velocities,
        }, state.stamp

    def send(self, position: np.ndarray, quat_xyzw: np.ndarray) -> None:
        self.backend.move_toward(position, quat_xyzw)

    def wait(self) -> None:
        now = time.monotonic()
        if self._deadline > now:
            time.sleep(self._deadline - now)
            self._deadline += self.period_s
        else:  # late (a slow read): the next period starts now rather than bursting to catch up
            self._deadline = now + self.period_s
