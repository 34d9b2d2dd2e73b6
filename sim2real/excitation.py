"""Excitation: a safe, rich TCP motion that makes an arm's dynamics visible in a log.

The plan moves the TCP from where it stands to the middle of the workspace box, then through
multi-sines (several sines per axis at distinct frequencies, random phases) at several
amplitudes and a chirp whose frequency rises while its amplitude falls. Frequencies are chosen
per amplitude so the planned speed stays under a fraction of the rig's speed limit; every
target then passes through the same limits as the arm node (`tether.safety.translation_target`),
so the box and the speed limit hold whatever the plan. Orientation is held where it starts.

Recorded per step (see `tether.sim2real.arm_log`): proprioception, joint velocities and the TCP
target sent; the action column holds the step as a normalised action (clipped to [-1, 1]).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tether import spaces
from tether.actions import ActionScale
from tether.config import Box, RigConfig
from tether.datasets.episode import EpisodeArrays
from tether.datasets.store import EpisodeWriter
from tether.safety import limit_norm, translation_target
from tether.sim2real.arm_log import TCP_TARGET, ExcitableArm, log_observation_space

MAX_FREQUENCY_FRACTION = 0.25  # highest planned frequency, as a fraction of the control rate
EXCITATION_TASK = "excitation"  # the task column of logged excitation episodes
CHIRP_WEIGHT = 0.25  # the chirp's share of the run, on the scale of the multi-sine amplitudes
MIN_PHASE_S = 1.5


@dataclass(frozen=True)
class ExcitationConfig:
    """Shape of the excitation; the defaults suit a table-top arm at 10 Hz."""

    margin: float = 0.05
    """Distance (m) the plan keeps from every face of the workspace box."""
    floor_clearance: float = 0.10
    """Height (m) above the box's floor (the table) the plan keeps, so fingers clear objects on it."""
    speed_fraction: float = 0.7
    """Planned speed bound as a fraction of the rig's max_linear_speed."""
    amplitudes: tuple[float, ...] = (1.0, 0.3, 0.1)
    """Multi-sine phases, as fractions of the inner box's half size."""
    sines_per_axis: int = 3
    chirp_start_hz: float = 0.05


def inner_box(workspace: Box, config: ExcitationConfig) -> Box:
    """The part of the workspace the excitation moves in."""
    low = np.array(workspace.low) + config.margin
    low[2] = max(low[2], workspace.low[2] + config.floor_clearance)
    high = np.array(workspace.high) - config.margin
    if np.any(low >= high):
        raise ValueError(
            f"workspace {list(workspace.low)}..{list(workspace.high)} is too small for a {config.margin} m margin "
            f"and {config.floor_clearance} m floor clearance"
        )
    return Box(low=tuple(low), high=tuple(high))


def _multisine(t: np.ndarray, half: np.ndarray, amplitude: float, cap: float, f_limit: float,
               n: int, rng: np.random.Generator) -> np.ndarray:
    """(T, 3) sums of n sines per axis; peak speed at most `cap` (each sine carries 1/n of the amplitude)."""
    f_max = min(f_limit, cap / (2 * np.pi * amplitude * np.linalg.norm(half)))
    out = np.zeros((len(t), 3))
    for axis in range(3):
        frequencies = f_max * rng.uniform(0.5, 1.0, size=n)
        phases = rng.uniform(0, 2 * np.pi, size=n)
        out[:, axis] = amplitude * half[axis] / n * np.sin(2 * np.pi * frequencies * t[:, None] + phases).sum(axis=1)
    return out


def _chirp(t: np.ndarray, half: np.ndarray, cap: float, f0: float, f1: float, rng: np.random.Generator) -> np.ndarray:
    """(T, 3) a linear chirp f0 -> f1 per axis whose amplitude shrinks as 1/f so its speed stays near `cap`."""
    duration = max(float(t[-1]), 1e-9)
    frequency = f0 + (f1 - f0) * t / duration
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * duration))
    speed_share = cap * half / np.linalg.norm(half)
    amplitude = np.minimum(half[None, :], speed_share[None, :] / (2 * np.pi * frequency[:, None]))
    return amplitude * np.sin(phase[:, None] + rng.uniform(0, 2 * np.pi, size=3)[None, :])


def plan_excitation(
    start: np.ndarray, rig: RigConfig, seconds: float, rng: np.random.Generator, config: ExcitationConfig
) -> np.ndarray:
    """(T, 3) TCP positions at the control rate: lead-in from `start`, then the phases; every step is
    at most speed_fraction * max_linear_speed long and every point after the lead-in lies in the inner box."""
    arm, dt = rig.arm, rig.control_dt
    box = inner_box(arm.workspace, config)
    low, high = np.array(box.low), np.array(box.high)
    centre, half = (low + high) / 2, (high - low) / 2
    cap = config.speed_fraction * arm.max_linear_speed
    f_limit = MAX_FREQUENCY_FRACTION * arm.control_rate_hz
    distance = float(np.linalg.norm(centre - start))
    lead_in = max(1.0, 1.2 * np.pi * distance / (2 * cap))  # a half-cosine blend peaks at pi/2 * mean speed
    # Slow, wide phases need more time than fast, small ones: durations grow with the amplitude.
    weights = np.sqrt([*config.amplitudes, CHIRP_WEIGHT])
    durations = (seconds - lead_in) * weights / weights.sum()
    if durations.min() < MIN_PHASE_S:
        raise ValueError(
            f"{seconds} s is too short: the lead-in takes {lead_in:.1f} s and the shortest of {len(weights)} phases "
            f"would last {durations.min():.1f} s (needs {MIN_PHASE_S} s)"
        )
    t_in = np.arange(1, int(round(lead_in / dt)) + 1) * dt
    blend = 0.5 - 0.5 * np.cos(np.pi * t_in / t_in[-1])
    times = [np.arange(int(round(d / dt))) * dt for d in durations]
    signals = [
        _multisine(t, half, a, cap, f_limit, config.sines_per_axis, rng) for t, a in zip(times, config.amplitudes)
    ]
    f_chirp = min(f_limit, cap / (2 * np.pi * np.linalg.norm(half) * min(config.amplitudes)))
    signals.insert(1, _chirp(times[-1], half, cap, config.chirp_start_hz, f_chirp, rng))
    desired = np.concatenate([start + blend[:, None] * (centre - start), *(centre + s for s in signals)])
    # The phases join with jumps; a rate limit at the plan's speed bound turns them into straight moves.
    path = np.empty_like(desired)
    previous = np.asarray(start, float)
    for i, point in enumerate(desired):
        previous = previous + limit_norm(point - previous, cap * dt)
        path[i] = previous
    return path


def run_excitation(arm: ExcitableArm, plan: np.ndarray, rig: RigConfig) -> EpisodeArrays:
    """Drive `arm` along `plan` (TCP positions, one per control period) under the arm node's limits,
    holding the orientation it starts with; returns the episode as logged."""
    config, dim = rig.arm, ActionScale.of_rig(rig).dim
    obs, stamp = arm.read()
    orientation = np.asarray(obs[spaces.TCP_POSE][3:], float)
    previous = np.asarray(obs[spaces.TCP_POSE][:3], float)
    rows: list[dict[str, np.ndarray]] = []
    actions, stamps = [], []
    for point in plan:
        measured = np.asarray(obs[spaces.TCP_POSE][:3], float)
        target = translation_target(
            measured, previous, point - previous, config.workspace, config.max_linear_speed, rig.control_dt
        )
        arm.send(target, orientation)
        rows.append({**obs, TCP_TARGET: np.concatenate([target, orientation])})
        action = np.zeros(dim)
        action[:3] = np.clip((target - previous) / config.action_scale[0], -1.0, 1.0)
        actions.append(action)
        stamps.append(stamp)
        previous = target
        arm.wait()
        obs, stamp = arm.read()
    final = {**obs, TCP_TARGET: np.concatenate([previous, orientation])}
    n = len(rows)
    return EpisodeArrays(
        obs={key: np.stack([row[key] for row in rows]).astype(np.float32) for key in rows[0]},
        final_obs={key: np.asarray(value, np.float32) for key, value in final.items()},
        action=np.array(actions, np.float32),
        policy_action=np.full((n, dim), np.nan, np.float32),
        reward=np.zeros(n, np.float32),
        terminated=np.zeros(n, bool),
        truncated=np.arange(n) == n - 1,
        intervened=np.zeros(n, bool),
        timestamp=np.array(stamps, np.float64),
    )


def record_excitation(
    next_arm: Callable[[], ExcitableArm],
    rig: RigConfig,
    out: Path,
    *,
    seconds: float,
    episodes: int,
    seed: int,
    source: str,
    config: ExcitationConfig = ExcitationConfig(),
) -> list[EpisodeArrays]:
    """Record `episodes` excitation runs into the log store `out` (appending if it exists). `next_arm`
    homes the arm and hands it over for each run; episode i plans with seed + i."""
    recorded = []
    with EpisodeWriter.create(
        out, log_observation_space(), ActionScale.of_rig(rig).dim, fps=rig.arm.control_rate_hz, rig=rig, exist_ok=True
    ) as writer:
        for i in tqdm(range(episodes), desc="excitation", disable=episodes == 1):
            arm = next_arm()
            start = arm.read()[0][spaces.TCP_POSE][:3]
            plan = plan_excitation(start, rig, seconds, np.random.default_rng(seed + i), config)
            episode = run_excitation(arm, plan, rig)
            writer.write_episode(episode, source=source, task=EXCITATION_TASK, seed=seed + i, notes=f"rig {rig.name}")
            recorded.append(episode)
    return recorded
