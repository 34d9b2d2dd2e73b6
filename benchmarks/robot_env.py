"""The scripted expert on pick_cube through RobotEnv (a twin graph over DDS) and the in-process twin env.

Both runs act on observations only (`tether.robot_ws.robot_env.ExpertView`), with the same operator settings;
the graph runs on sim time at `--time-scale`. Success rate, mean episode length and wall-clock control steps
per second for each.

    ROS_DOMAIN_ID=57 .venv/bin/python -m benchmarks.robot_env [--episodes 20] [--time-scale 3]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import tether  # noqa: F401  (first: selects headless GL before mujoco is imported)
from benchmarks.report import markdown_table, write_results
from tether.config import RigConfig, load_rig
from tether.robot_ws.graph import Graph, GraphSpec
from tether.robot_ws.robot_env import ExpertView, RobotEnv
from tether.sim2real.twin.env import TwinEnv
from tether.sim2real.twin.expert import ScriptedOperator


def expert_episodes(env: gym.Env, rig: RigConfig, episodes: int, seed: int) -> dict:
    expert = ScriptedOperator(rig.teleop.scripted, seed=seed)
    successes, lengths, steps = 0, [], 0
    start = time.perf_counter()
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        expert.reset()
        for length in range(1, rig.task.episode_length + 1):
            obs, _, terminated, truncated, info = env.step(expert.act(ExpertView(rig, obs)))
            if terminated or truncated:
                break
        successes += bool(info["success"])
        lengths.append(length)
        steps += length
    wall = time.perf_counter() - start
    return {
        "episodes": episodes, "success_rate": successes / episodes, "mean_length": float(np.mean(lengths)),
        "steps_per_s": steps / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--time-scale", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rig = load_rig("twin_panda")
    twin = TwinEnv(rig=rig, obs_mode="state")
    results = {"in-process twin env": expert_episodes(twin, rig, args.episodes, args.seed)}
    twin.close()
    spec = GraphSpec(rig=rig, nodes=("twin", "arm"), time_scale=args.time_scale, seed=args.seed)
    name = f"RobotEnv, twin graph at {args.time_scale:g}x"
    with Graph(spec), RobotEnv(rig, "state", sim_time=args.time_scale != 1.0) as env:
        results[name] = expert_episodes(env, rig, args.episodes, args.seed)
    rows = [[k, f"{r['success_rate']:.0%}", r["mean_length"], r["steps_per_s"]] for k, r in results.items()]
    table = markdown_table(["env", "success", "mean episode length (steps)", "control steps/s (wall)"], rows)
    notes = (
        f"`ROS_DOMAIN_ID=57 .venv/bin/python -m benchmarks.robot_env --episodes {args.episodes} "
        f"--time-scale {args.time_scale:g}`: the scripted operator (rig `twin_panda` settings: noise, "
        f"pauses, detours) on pick_cube, {args.episodes} episodes each, acting on observations only. The "
        "graph is the twin and arm nodes in this process; RobotEnv is its own node in its own ROS context."
    )
    write_results("robot_env", {"args": vars(args), "results": results}, table, notes)
    print(table)


if __name__ == "__main__":
    main()
