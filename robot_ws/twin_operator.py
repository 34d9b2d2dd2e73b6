"""The scripted operator as a teleop device: the twin's stand-in for the human.

It watches the twin world (privileged state, as a person sees the table) and either acts
all the time (recording demonstrations) or watches the policy's proposals and takes over
when the policy strays (human-in-the-loop training), by `tether.teleop.arbitration`.

The teleop node polls a device faster than the control rate, so a person's input is never stale;
the scripted operator still decides once per control period of the twin's clock (its takeover
rule and grasp wait count control steps) and repeats that decision to the polls in between.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from tether.actions import gripper_part
from tether.config import RigConfig
from tether.robot_ws.twin_backend import TwinWorld
from tether.safety import DUE_FRACTION
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
        self.period = rig.control_dt
        self._proposal: np.ndarray | None = None
        self._decision: TeleopCommand | None = None
        self._decided_at = 0.0

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
        self._decision = None

    def poll(self) -> TeleopCommand:
        """This control period's decision: made at the first poll of the period, repeated until the next."""
        now = self.world.sim_clock()
        if self._decision is None or now - self._decided_at >= DUE_FRACTION * self.period:
            self._decision, self._decided_at = self._decide(), now
        return self._decision

    def _decide(self) -> TeleopCommand:
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
        return TeleopCommand(motion=motion, gripper=gripper_part(wanted), engaged=engaged)
