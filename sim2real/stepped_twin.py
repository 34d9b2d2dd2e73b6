"""The twin's arm driven one control period at a time, as excitation and log replay drive it.

The same object records an excitation log from the twin and replays a log (from the twin or a
real rig) through it, so both see the same command path: a TCP target, delayed by the rig's
identified command latency, tracked by the twin's IK and joint impedance controller.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

from tether import spaces
from tether.config import RigConfig
from tether.sim2real.arm_log import JOINT_VEL
from tether.sim2real.twin.sim import TwinSim
from tether.transforms import quat_xyzw_to_matrix


def nominal_twin(rig: RigConfig) -> TwinSim:
    """The twin of `rig` on its own task with domain randomisation off: its nominal dynamics only."""
    plain = rig.model_copy(update={"randomization": rig.randomization.model_copy(update={"enabled": False})})
    return TwinSim(plain, rig.task.name)


class SteppedTwinArm:
    """An `ExcitableArm` on a TwinSim. A command acts `rig.twin_dynamics.command_latency_steps` periods
    after it is sent; until then the arm tracks the targets already queued (`pending`, oldest first;
    default: hold the pose it has now)."""

    def __init__(self, sim: TwinSim, pending: Iterable[np.ndarray] | None = None) -> None:
        self.sim = sim
        self.dt = sim.rig.control_dt
        latency = sim.rig.twin_dynamics.command_latency_steps
        if pending is None:
            hold = sim.proprio()[spaces.TCP_POSE]
            pending = [hold] * latency
        self._pending: deque[np.ndarray] = deque(np.asarray(p, float) for p in pending)
        if len(self._pending) != latency:
            raise ValueError(f"{len(self._pending)} pending targets given for a latency of {latency} steps")

    def read(self) -> tuple[dict[str, np.ndarray], float]:
        return {**self.sim.proprio(), JOINT_VEL: self.sim.joint_velocities()}, self.sim.time

    def send(self, position: np.ndarray, quat_xyzw: np.ndarray) -> None:
        self._pending.append(np.concatenate([position, quat_xyzw]))
        target = self._pending.popleft()
        self.sim.command(target[:3], quat_xyzw_to_matrix(target[3:]), gripper=0, ramp_s=self.dt)

    def wait(self) -> None:
        if not self.sim.advance(self.dt):
            raise RuntimeError(f"rig '{self.sim.rig.name}': twin physics diverged")
