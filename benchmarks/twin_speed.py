"""Control steps per second of the twin: state-only, one camera and two cameras at 128x128.

Each figure is also given as a multiple of real time at the rig's control rate (10 Hz) and
relative to state-only in the same process. The cost of the physics alone (the mj_step
calls one control step makes, without control, IK or observations) is the floor.

    .venv/bin/python benchmarks/twin_speed.py [--steps 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import tether  # noqa: F401  (first: selects headless GL before mujoco is imported)
import mujoco  # noqa: I001
from benchmarks.report import markdown_table, write_results
from tether.config import load_rig
from tether.sim2real.twin.env import TwinEnv


def steps_per_second(env: TwinEnv, steps: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, size=(steps, env.action_space.shape[0])).astype(np.float32)
    env.reset(seed=seed)
    env.step(actions[0])  # warm-up: renderer contexts, caches
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def physics_only(env: TwinEnv, steps: int) -> float:
    env.reset(seed=0)
    substeps = int(round(env.rig.control_dt / env.sim.model.opt.timestep))
    start = time.perf_counter()
    mujoco.mj_step(env.sim.model, env.sim.data, nstep=substeps * steps)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--task", default="pick_cube")
    args = parser.parse_args()

    rig = load_rig("twin_panda")
    one_camera = rig.model_copy(update={"cameras": rig.cameras[:1]})
    setups = {
        "physics only (floor)": None,
        "state-only": TwinEnv(args.task, rig=rig, obs_mode="state"),
        "one camera 128x128": TwinEnv(args.task, rig=one_camera, obs_mode="pixels"),
        "two cameras 128x128": TwinEnv(args.task, rig=rig, obs_mode="pixels"),
    }
    results = {}
    for name, env in setups.items():
        if env is None:
            rate = physics_only(setups["state-only"], args.steps)
        else:
            rate = steps_per_second(env, args.steps if env.obs_mode == "state" else args.steps // 4)
        results[name] = rate
        print(f"{name}: {rate:,.0f} control steps/s")
    control_hz = rig.arm.control_rate_hz
    state_rate = results["state-only"]
    rows = [[name, rate, rate / control_hz, rate / state_rate] for name, rate in results.items()]
    table = markdown_table(["setup", "control steps/s", "x real time (10 Hz)", "vs state-only"], rows)
    notes = (
        f"`.venv/bin/python benchmarks/twin_speed.py --steps {args.steps}` on task `{args.task}`, rig `twin_panda` "
        f"({rig.arm.physics_rate_hz:.0f} Hz physics, {control_hz:.0f} Hz control, random actions, "
        "Mesa EGL software rendering with shadows/reflections off). One process, one core."
    )
    write_results(
        "twin_speed",
        {"task": args.task, "steps": args.steps, "control_rate_hz": control_hz, "steps_per_second": results},
        table,
        notes,
    )
    print(table)


if __name__ == "__main__":
    main()
