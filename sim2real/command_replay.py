"""Replaying a logged command sequence through the twin, and how far the twin drifts from the log.

A segment [start, stop) of a logged episode is replayed from the logged state at `start`
(joints, joint velocities, and the controller tracking the target it was last sent); the twin
then receives the logged TCP targets start .. stop-1 and its state after each is compared with
logged rows start+1 .. stop. With a command latency of k steps, the targets still in flight at
`start` are the logged targets start-k .. start-1 (before the log began: the logged first pose).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tether import spaces
from tether.config import RigConfig
from tether.sim2real.arm_log import LoggedEpisode
from tether.sim2real.stepped_twin import SteppedTwinArm
from tether.sim2real.twin.sim import TwinSim
from tether.transforms import quat_xyzw_to_matrix

RESET_RNG_SEED = 0  # the scene does not matter to a replay (the arm moves in free space), but is fixed
DIVERGED_M = 1e3  # error recorded for the steps after the twin's physics blew up


@dataclass(frozen=True, eq=False)
class Replay:
    """The twin's joints and TCP positions after each replayed command, beside the logged ones."""

    joints: np.ndarray  # (L, 7) rad
    tcp: np.ndarray  # (L, 3) m
    logged_joints: np.ndarray
    logged_tcp: np.ndarray
    diverged: bool = False

    @property
    def tcp_error(self) -> np.ndarray:
        """(L,) distance (m) between twin and logged TCP after each command."""
        return np.linalg.norm(self.tcp - self.logged_tcp, axis=1)


def _command(episode: LoggedEpisode, index: int) -> np.ndarray:
    """Target sent at row `index`; before the log began, the arm held its first logged pose."""
    return episode.tcp_target[index] if index >= 0 else episode.tcp_pose[0]


def replay_segment(sim: TwinSim, episode: LoggedEpisode, start: int, stop: int) -> Replay:
    """Replay logged commands start .. stop-1 on `sim` (its rig's dynamics) from the logged state at `start`."""
    if not 0 <= start < stop <= len(episode) - 1:
        raise ValueError(f"segment [{start}, {stop}) does not fit episode {episode.index} of {len(episode)} rows")
    latency = sim.rig.twin_dynamics.command_latency_steps
    sim.reset(np.random.default_rng(RESET_RNG_SEED))
    last = _command(episode, start - 1 - latency)
    sim.place_arm(episode.joints[start], episode.joint_vel[start], last[:3], quat_xyzw_to_matrix(last[3:]))
    arm = SteppedTwinArm(sim, pending=[_command(episode, i) for i in range(start - latency, start)])
    joints = np.full((stop - start, 7), DIVERGED_M)
    tcp = np.full((stop - start, 3), DIVERGED_M)
    diverged = False
    for row, t in enumerate(range(start, stop)):
        arm.send(episode.tcp_target[t, :3], episode.tcp_target[t, 3:])
        try:
            arm.wait()
        except RuntimeError:  # the rest of the segment counts as far off as can be
            diverged = True
            break
        state = sim.proprio()
        joints[row] = state[spaces.JOINTS]
        tcp[row] = state[spaces.TCP_POSE][:3]
    rows = slice(start + 1, stop + 1)
    return Replay(joints, tcp, episode.joints[rows], episode.tcp_pose[rows, :3], diverged)


@dataclass(frozen=True)
class Divergence:
    """How far the twin's replay of one episode drifted from the log."""

    episode: int
    steps: int
    tcp_rms_m: float
    tcp_final_m: float
    tcp_max_m: float
    joint_rms_rad: float


def divergence(replay: Replay, episode: int) -> Divergence:
    error = replay.tcp_error
    return Divergence(
        episode=episode,
        steps=len(error),
        tcp_rms_m=float(np.sqrt(np.mean(error**2))),
        tcp_final_m=float(error[-1]),
        tcp_max_m=float(error.max()),
        joint_rms_rad=float(np.sqrt(np.mean((replay.joints - replay.logged_joints) ** 2))),
    )


def gap_report(rig: RigConfig, episodes: list[LoggedEpisode], sim: TwinSim) -> dict:
    """Replay every logged episode whole on `sim` (the twin of `rig`); per-episode and overall divergence."""
    per_episode = [divergence(replay_segment(sim, ep, 0, len(ep) - 1), ep.index) for ep in episodes]
    steps = np.array([d.steps for d in per_episode])
    rms = np.array([d.tcp_rms_m for d in per_episode])
    return {
        "rig": rig.name,
        "episodes": [asdict(d) for d in per_episode],
        "overall": {
            "episodes": len(per_episode),
            "steps": int(steps.sum()),
            "tcp_rms_m": float(np.sqrt(np.sum(rms**2 * steps) / steps.sum())),
            "tcp_final_mean_m": float(np.mean([d.tcp_final_m for d in per_episode])),
            "tcp_max_m": float(max(d.tcp_max_m for d in per_episode)),
        },
    }
