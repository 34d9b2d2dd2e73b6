"""Child process for the crash and concurrent-reader tests: appends deterministic episodes to a store.

    python writer_child.py STORE FIRST COUNT PAUSE_S

Episode k has seed k and the content of conftest's `marked_episode(k, child_length(k))`, so a parent
can check any committed episode bit for bit. Prints `ready`, then `committed k` after each commit.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

IMAGE_SHAPE = (16, 12, 3)
CHUNK_STEPS = 8  # small, so flushes, growth and shard rewrites happen every few steps


def child_length(episode: int) -> int:
    return 1 + (episode * 7) % 23


def load_helpers():  # noqa: ANN201 - the conftest module
    spec = importlib.util.spec_from_file_location("datasets_conftest", Path(__file__).with_name("conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(path: str, first: int, count: int, pause_s: float) -> None:
    from tether.datasets.store import EpisodeWriter

    helpers = load_helpers()
    space = helpers.marked_space(IMAGE_SHAPE)
    with EpisodeWriter.create(
        path, space, helpers.ACTION_DIM, fps=10.0, exist_ok=True, chunk_steps=CHUNK_STEPS
    ) as writer:
        print("ready", flush=True)
        for k in range(first, first + count):
            episode = helpers.marked_episode(k, child_length(k), image_shape=IMAGE_SHAPE)
            writer.begin_episode(source="sim", task="marked", seed=k)
            for t, transition in enumerate(episode.transitions()):
                writer.add_step(
                    transition.obs,
                    transition.action,
                    transition.reward,
                    transition.terminated,
                    transition.truncated,
                    transition.intervened,
                    policy_action=transition.policy_action,
                    timestamp=float(episode.timestamp[t]),
                )
            writer.end_episode(success=k % 2 == 0, final_obs=episode.final_obs)
            print(f"committed {k}", flush=True)
            time.sleep(pause_s)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
