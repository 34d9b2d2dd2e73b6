"""LeRobot's own `LeRobotDataset` loads a tether export: one command, run from tether's environment.

    .venv/bin/python -m benchmarks.lerobot_load --lerobot-python /tmp/lerobot_venv/bin/python [--store S]

Records 3 scripted pick_cube episodes on the twin (two cameras, every state key; or takes --store), exports
them with `tether data convert --to lerobot`, writes the values LeRobot should hand out for each episode's first
frame (action, the concatenated state, every camera image), and runs benchmarks/lerobot_check.py with the given
python (one with lerobot 0.4.4: `python3.11 -m venv /tmp/lerobot_venv && /tmp/lerobot_venv/bin/pip install
torch==2.9.1 torchvision==0.24.1 lerobot==0.4.4`). Exits with the check's status.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tether.cli.sim import run_expert
from tether.datasets.lerobot_io import export_lerobot
from tether.datasets.store import EpisodeStore

CHECK = Path(__file__).with_name("lerobot_check.py")


def expected_values(store: EpisodeStore, export: Path) -> dict:
    """Counts and each episode's first frame as LeRobot should return them (state in the export's layout)."""
    info = json.loads((export / "meta" / "info.json").read_text())
    state_keys = list(info["tether"]["state_keys"])
    items = []
    for episode in store.episodes:
        first = {key: store.load(key, episode.start, episode.start + 1)[0] for key in [*store.spec.obs, "action"]}
        items.append({
            "index": episode.start,
            "action": first["action"].tolist(),
            "observation.state": np.concatenate([first[key].ravel() for key in state_keys]).tolist(),
            "images": {f"observation.images.{key.split('/', 1)[1]}": value.tolist()
                       for key, value in first.items() if key.startswith("images/")},
        })
    return {"total_frames": store.n_frames, "total_episodes": store.n_episodes, "fps": store.fps, "items": items}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lerobot-python", required=True, help="a python with lerobot 0.4.4 installed")
    parser.add_argument("--store", type=Path, help="export this store instead of recording 3 twin episodes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lerobot_load-") as tmp:
        store_path = args.store
        if store_path is None:
            store_path = Path(tmp) / "demos.zarr"
            run_expert("pick_cube", "twin_panda", 3, seed=0, out=store_path)
        export = Path(tmp) / "export"
        export_lerobot(store_path, export)
        expected = Path(tmp) / "expected.json"
        expected.write_text(json.dumps(expected_values(EpisodeStore(store_path), export)))
        return subprocess.run([args.lerobot_python, str(CHECK), str(export), str(expected)]).returncode


if __name__ == "__main__":
    sys.exit(main())
