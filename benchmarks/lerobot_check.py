"""Does LeRobot itself load a tether export? Run it in LeRobot's environment (it imports no tether):

    /tmp/lerobot_venv/bin/python benchmarks/lerobot_check.py EXPORT [EXPECTED.json]

Opens EXPORT (made by `tether data convert demos.zarr EXPORT --to lerobot`) with
`LeRobotDataset(repo_id, root=EXPORT)`, offline, and checks the frame and episode counts, fps, and every
feature's tensor shape in item 0 against meta/info.json; given EXPECTED (benchmarks/lerobot_load.py
writes one), also the counts and, for each listed item, its action, state and images. Prints a summary;
exits 1 on any mismatch.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # everything is on disk: a network call would be a bug

import numpy as np  # noqa: E402
from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402


def tensor_shape(feature: dict) -> tuple[int, ...]:
    """The shape LeRobot hands out: images channel-first, a one-element feature as a scalar."""
    shape = tuple(feature["shape"])
    if feature["dtype"] == "image":
        return (shape[2], shape[0], shape[1])
    return () if shape == (1,) else shape


def problems(dataset: LeRobotDataset, info: dict, expected: dict | None) -> list[str]:
    found = []
    loaded = {"total_frames": len(dataset), "total_episodes": dataset.num_episodes, "fps": dataset.fps}
    for source, values in (("info.json", info), ("expected", expected or {})):
        found += [f"{name}: {got} loaded, {values[name]} in {source}"
                  for name, got in loaded.items() if name in values and got != values[name]]
    item = dataset[0]
    for name, feature in info["features"].items():
        if name not in item:
            found.append(f"item 0 has no '{name}'")
        elif tuple(item[name].shape) != tensor_shape(feature):
            found.append(f"'{name}': shape {tuple(item[name].shape)} != {tensor_shape(feature)}")
    if not isinstance(item.get("task"), str):
        found.append("item 0 has no task string")
    for want in (expected or {}).get("items", []):
        item = dataset[want["index"]]
        for name in ("action", "observation.state"):
            if not np.array_equal(item[name].numpy(), np.asarray(want[name], np.float32)):
                found.append(f"item {want['index']}: '{name}' differs")
        for name, pixels in want["images"].items():
            image = np.rint(item[name].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
            if not np.array_equal(image, np.asarray(pixels, np.uint8)):
                found.append(f"item {want['index']}: image '{name}' differs")
    return found


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(argv[0])
    info = json.loads((root / "meta" / "info.json").read_text())
    expected = json.loads(Path(argv[1]).read_text()) if len(argv) == 2 else None
    repo_id = info.get("tether", {}).get("repo_id", f"local/{root.name}")
    dataset = LeRobotDataset(repo_id, root=root)
    found = problems(dataset, info, expected)
    checked = len((expected or {}).get("items", []))
    print(f"{root}: LeRobotDataset '{repo_id}' v{dataset.meta.info['codebase_version'].lstrip('v')}: "
          f"{len(dataset)} frames, {dataset.num_episodes} episodes at {dataset.fps} fps; "
          f"features {', '.join(dataset.features)}; {checked} item(s) compared with expected values")
    for problem in found:
        print(f"mismatch: {problem}")
    print("ok" if not found else f"{len(found)} mismatch(es)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
