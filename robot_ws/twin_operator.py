"""The scripted operator as a teleop device: the twin's stand-in for the human.

It watches the twin world (privileged state, as a person sees the table) and either acts
all the time (recording demonstrations) or watches the policy's proposals and takes over
when the policy strays (human-in-the-loop training), by `tether.teleop.arbitration`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from tether.config import RigConfig
from tether.robot_ws.twin_backend import TwinWorld
from tether.sim2real.twin.expert import ScriptedOperator
from tether.teleop.arbitration import TakeoverRule
from tether.teleop.device import TeleopCommand, TeleopDevice

OperatorMode = Literal["always", "takeover", "never"]


class ScriptedTeleop(TeleopDevice):
    def __init__(self, world: TwinWorld, rig: RigConfig, mode: OperatorMode, seed: int = 0) -> None:
        self.world = world
        self.mode = mode
        self.operator = ScriptedOperator(rig.teleop.scripted, seed=seed)
        self.rule = TakeoverRule()
        self.rotation = rig.arm.rotation_actions
        self._proposal: np.ndarray | None = None

    def connect(self) -> None:
        """The twin is in this process."""

    def close(self) -> None:
        """Nothing to release."""

    def watch(self, proposal: np.ndarray | None) -> None:
        """The policy's latest proposal (normalised action), for the takeover rule."""
        self._proposal = proposal

    def new_episode(self) -> None:
        self.operator.reset()
        self.rule.reset()
        self._proposal = None

    def poll(self) -> TeleopCommand:
        with self.world.lock:
            wanted = self.operator.act(self.world.sim)
        if self.mode == "always":
            engaged = True
        elif self.mode == "never":
            engaged = False
        else:
            engaged = self.rule.step(self._proposal, wanted)
        motion = np.zeros(6)
        motion[: 6 if self.rotation else 3] = wanted[: 6 if self.rotation else 3]
        return TeleopCommand(motion=motion, gripper=float(wanted[-1]), engaged=engaged)
