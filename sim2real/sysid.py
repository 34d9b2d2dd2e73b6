"""System identification: fit the twin's arm dynamics so it replays a logged command sequence
the way the logged arm moved.

The log is cut into segments of `segment_steps` control periods; every `holdout_every`-th
segment is held out for validation. Each segment is replayed from its logged state
(`tether.sim2real.command_replay`), its first `washout_steps` not scored (they absorb what the log does
not say about the controller's internal state). The residual is the TCP position error (m) and
the joint error (rad, weighted by `joint_weight`) at every scored step.

Command latency is an integer, so it is chosen first: the latency (0 .. max_latency) with the
least training error at the starting values. The continuous parameters are then fitted in
log space (friction, which may be zero, in N m) by scipy's bounded least squares or by CMA-ES.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from scipy.optimize import least_squares
from tqdm import tqdm

from tether.config import RigConfig, TwinDynamics, TwinArm, load_rig, resolve_rig_path
from tether.sim2real.arm_log import LoggedEpisode
from tether.sim2real.command_replay import replay_segment
from tether.sim2real.stepped_twin import nominal_twin
from tether.sim2real.twin.dynamics import effective_dynamics

log = logging.getLogger(__name__)

Method = Literal["lsq", "cma"]
BOUNDS: dict[str, tuple[float, float]] = {  # inside the config's own limits
    "joint_damping": (1e-3, 200.0),
    "joint_armature": (1e-4, 10.0),
    "joint_friction": (0.0, 50.0),
    "stiffness_scale": (0.05, 10.0),
    "damping_ratio": (0.05, 10.0),
}
LINEAR = frozenset({"joint_friction"})  # fitted as is; the rest in log space
FITTABLE = tuple(BOUNDS)
DIVERGED_COST = 1e6  # the cost of a parameter set whose replay blew up


@dataclass(frozen=True)
class SysidConfig:
    params: tuple[str, ...] = FITTABLE
    """Continuous parameters to fit (names of TwinDynamics fields)."""
    method: Method = "lsq"
    segment_steps: int = 20
    washout_steps: int = 2
    holdout_every: int = 4
    """Every n-th segment (n-1, 2n-1, ...) is held out for validation."""
    max_latency: int = 3
    """Command latencies 0 .. max_latency (control steps) are tried."""
    joint_weight: float = 0.3
    """Metres of TCP error one radian of joint error counts as."""
    max_evals: int = 200
    """Budget of replays of the training segments in the continuous fit."""
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [p for p in self.params if p not in BOUNDS]
        if unknown or not self.params:
            raise ValueError(f"params {list(self.params)}: choose from {', '.join(FITTABLE)}")
        if self.segment_steps <= self.washout_steps or self.washout_steps < 0:
            raise ValueError(f"segment_steps {self.segment_steps} must exceed washout_steps {self.washout_steps} >= 0")
        if self.holdout_every < 2:
            raise ValueError(f"holdout_every {self.holdout_every}: must be at least 2")
        if not 0 <= self.max_latency <= 10:
            raise ValueError(f"max_latency {self.max_latency}: must be in 0..10")


@dataclass(frozen=True)
class Segment:
    episode: LoggedEpisode
    start: int
    stop: int


def split_segments(episodes: list[LoggedEpisode], config: SysidConfig) -> tuple[list[Segment], list[Segment]]:
    """Training and held-out segments of `segment_steps` commands each (a short tail is dropped)."""
    segments = [
        Segment(ep, start, start + config.segment_steps)
        for ep in episodes
        for start in range(0, len(ep) - 1 - config.segment_steps + 1, config.segment_steps)
    ]
    held = [s for i, s in enumerate(segments) if i % config.holdout_every == config.holdout_every - 1]
    train = [s for i, s in enumerate(segments) if i % config.holdout_every != config.holdout_every - 1]
    if not train or not held:
        raise ValueError(
            f"the log gives {len(segments)} segments of {config.segment_steps} steps; need at least "
            f"{config.holdout_every} to hold one out (record a longer log)"
        )
    return train, held


def with_dynamics(rig: RigConfig, dynamics: TwinDynamics) -> RigConfig:
    return rig.model_copy(update={"twin_dynamics": dynamics})


def segment_errors(rig: RigConfig, segments: list[Segment], washout: int) -> tuple[np.ndarray, np.ndarray]:
    """(S, L, 3) TCP and (S, L, 7) joint errors of each segment's scored steps on the twin of `rig`."""
    sim = nominal_twin(rig)
    tcp, joints = [], []
    for seg in segments:
        replay = replay_segment(sim, seg.episode, seg.start, seg.stop)
        tcp.append((replay.tcp - replay.logged_tcp)[washout:])
        joints.append((replay.joints - replay.logged_joints)[washout:])
    sim.close()
    return np.array(tcp), np.array(joints)


def error_summary(rig: RigConfig, segments: list[Segment], washout: int) -> dict[str, float]:
    """Trajectory error of the twin of `rig` over `segments`: TCP RMS and end-of-segment error, joint RMS."""
    tcp, joints = segment_errors(rig, segments, washout)
    distance = np.linalg.norm(tcp, axis=2)
    return {
        "tcp_rms_m": float(np.sqrt(np.mean(distance**2))),
        "tcp_final_mean_m": float(np.mean(distance[:, -1])),
        "joint_rms_rad": float(np.sqrt(np.mean(joints**2))),
    }


class Objective:
    """Residuals of a parameter vector over the training segments; counts its evaluations."""

    def __init__(self, rig: RigConfig, start: TwinDynamics, segments: list[Segment], config: SysidConfig) -> None:
        self.rig, self.start, self.segments, self.config = rig, start, segments, config
        self.evaluations = 0
        self.progress = tqdm(total=config.max_latency + 1 + config.max_evals, desc="sysid replays", leave=False)

    def to_x(self, dynamics: TwinDynamics) -> np.ndarray:
        values = [getattr(dynamics, p) for p in self.config.params]
        return np.array([v if p in LINEAR else np.log(v) for p, v in zip(self.config.params, values)])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        low = [BOUNDS[p][0] if p in LINEAR else np.log(BOUNDS[p][0]) for p in self.config.params]
        high = [BOUNDS[p][1] if p in LINEAR else np.log(BOUNDS[p][1]) for p in self.config.params]
        return np.array(low), np.array(high)

    def dynamics(self, x: np.ndarray) -> TwinDynamics:
        low, high = self.bounds()
        x = np.clip(x, low, high)
        values = {p: float(v if p in LINEAR else np.exp(v)) for p, v in zip(self.config.params, x)}
        return self.start.model_copy(update=values)

    def residuals(self, x: np.ndarray) -> np.ndarray:
        self.evaluations += 1
        self.progress.update(1)
        rig = with_dynamics(self.rig, self.dynamics(x))
        tcp, joints = segment_errors(rig, self.segments, self.config.washout_steps)
        residual = np.concatenate([tcp.ravel(), self.config.joint_weight * joints.ravel()])
        return residual if np.all(np.abs(residual) < DIVERGED_COST) else np.full_like(residual, DIVERGED_COST)

    def cost(self, x: np.ndarray) -> float:
        return float(np.sum(self.residuals(np.asarray(x)) ** 2))

    def close(self) -> None:
        self.progress.close()


def _fit_lsq(objective: Objective, x0: np.ndarray) -> np.ndarray:
    low, high = objective.bounds()
    result = least_squares(
        objective.residuals, np.clip(x0, low, high), bounds=(low, high), diff_step=1e-3,
        max_nfev=objective.config.max_evals, x_scale=1.0,
    )
    return result.x


def _fit_cma(objective: Objective, x0: np.ndarray) -> np.ndarray:
    import cma

    low, high = objective.bounds()
    options = {
        "bounds": [list(low), list(high)], "seed": objective.config.seed + 1,  # cma reads seed 0 as "random"
        "maxfevals": objective.config.max_evals, "verbose": -9, "tolfun": 1e-14,
    }
    strategy = cma.CMAEvolutionStrategy(list(np.clip(x0, low, high)), 0.3, options)
    strategy.optimize(objective.cost)
    return np.asarray(strategy.result.xbest)


@dataclass
class SysidResult:
    start: TwinDynamics
    fitted: TwinDynamics
    before: dict[str, dict[str, float]] = field(default_factory=dict)
    """Errors with the rig's own dynamics: {'train': ..., 'held_out': ...}."""
    after: dict[str, dict[str, float]] = field(default_factory=dict)
    latency_costs: dict[int, float] = field(default_factory=dict)
    evaluations: int = 0
    seconds: float = 0.0

    def as_dict(self, config: SysidConfig) -> dict:
        return {
            "method": config.method,
            "params": list(config.params),
            "start": self.start.model_dump(),
            "fitted": self.fitted.model_dump(),
            "before": self.before,
            "after": self.after,
            "latency_costs": {str(k): v for k, v in self.latency_costs.items()},
            "evaluations": self.evaluations,
            "seconds": self.seconds,
        }


def identify(rig: RigConfig, episodes: list[LoggedEpisode], config: SysidConfig) -> SysidResult:
    """Fit `config.params` and the command latency of the twin of `rig` to the logged episodes."""
    if not isinstance(rig.arm, TwinArm):
        raise ValueError(
            f"rig '{rig.name}': identification fits a twin rig (arm.backend 'twin'), got '{rig.arm.backend}'"
        )
    began = time.perf_counter()
    train, held = split_segments(episodes, config)
    washout = config.washout_steps
    sim = nominal_twin(rig)
    start = effective_dynamics(sim.model, sim.controller.dof_index, rig.twin_dynamics)
    sim.close()
    result = SysidResult(start=start, fitted=start)
    result.before = {"train": error_summary(rig, train, washout), "held_out": error_summary(rig, held, washout)}
    objective = Objective(rig, start, train, config)
    try:
        x0 = objective.to_x(start)
        for latency in range(config.max_latency + 1):
            objective.start = start.model_copy(update={"command_latency_steps": latency})
            result.latency_costs[latency] = objective.cost(x0)
        best = min(result.latency_costs, key=result.latency_costs.get)
        objective.start = start.model_copy(update={"command_latency_steps": best})
        x = _fit_lsq(objective, x0) if config.method == "lsq" else _fit_cma(objective, x0)
        fitted = objective.dynamics(x)
    finally:
        objective.close()
    result.fitted = fitted
    fitted_rig = with_dynamics(rig, fitted)
    result.after = {
        "train": error_summary(fitted_rig, train, washout), "held_out": error_summary(fitted_rig, held, washout)
    }
    result.evaluations = objective.evaluations
    result.seconds = time.perf_counter() - began
    return result


def write_fitted_rig(rig: str | Path, fitted: TwinDynamics, out: Path) -> RigConfig:
    """A copy of the rig's YAML at `out` with `twin_dynamics` set to the fitted values; returns it loaded."""
    source = resolve_rig_path(rig)
    data = yaml.safe_load(source.read_text())
    data["twin_dynamics"] = {k: v for k, v in fitted.model_dump().items() if v is not None}
    model = data.get("arm", {}).get("model")
    if model is not None and not Path(model).is_absolute():  # keep a relative MJCF path pointing at its file
        data["arm"]["model"] = str((source.parent / model).resolve())
    out.parent.mkdir(parents=True, exist_ok=True)
    header = f"# {source.name} with twin dynamics identified by `tether sim sysid`\n"
    out.write_text(header + yaml.safe_dump(data, sort_keys=False))
    return load_rig(out)


def error_table(result: SysidResult) -> str:
    """Before/after trajectory errors on training and held-out segments, as a markdown table."""
    lines = [
        "| segments | dynamics | TCP RMS (mm) | TCP at segment end (mm) | joint RMS (mrad) |",
        "|---|---|---|---|---|",
    ]
    for split in ("train", "held_out"):
        for when, errors in (("before", result.before), ("after", result.after)):
            e = errors[split]
            lines.append(
                f"| {split} | {when} | {e['tcp_rms_m'] * 1e3:.3f} | {e['tcp_final_mean_m'] * 1e3:.3f} "
                f"| {e['joint_rms_rad'] * 1e3:.3f} |"
            )
    return "\n".join(lines)
