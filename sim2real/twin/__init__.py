"""The MuJoCo digital twin: the embedded default arm, cameras and tasks.

Importing this package registers the gymnasium envs `tether/<task>-v0`.
"""

import gymnasium as gym

from tether.sim2real.twin.tasks import TASKS

ENV_IDS = {name: f"tether/{name}-v0" for name in TASKS}

for _name, _env_id in ENV_IDS.items():
    if _env_id not in gym.registry:
        gym.register(_env_id, entry_point="tether.sim2real.twin.env:TwinEnv", kwargs={"task": _name})


def make_env(task: str, **kwargs) -> gym.Env:
    """`gymnasium.make` for a twin task by its short name (`pick_cube`, `peg_insert`)."""
    if task not in ENV_IDS:
        raise ValueError(f"task '{task}': unknown (known: {', '.join(ENV_IDS)})")
    return gym.make(ENV_IDS[task], **kwargs)
