"""Training scalars to `metrics.jsonl` (one JSON object a line) and to TensorBoard, from one call.

    writer = MetricsWriter(run_dir)
    writer.write(env_steps, {"critic_loss": 0.4, "success_rate": 0.5})
    writer.close()

JSON lines are what scripts and tests read; the TensorBoard events (under `run_dir/tensorboard`)
are what a person watches: `tensorboard --logdir run_dir`. Lines are appended, so a resumed run
continues the same file.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


class MetricsWriter:
    """Appends `{"step": ..., "time": ..., **scalars}` to metrics.jsonl and adds each scalar to TensorBoard."""

    def __init__(self, run_dir: Path, *, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / METRICS_FILE
        self._board = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when a run writes

            self._board = SummaryWriter(str(self.run_dir / TENSORBOARD_DIR))

    def write(self, step: int, scalars: dict[str, float]) -> None:
        """One record at `step` (environment steps); non-finite values are written as null in JSON."""
        record = {"step": int(step), "time": time.time(),
                  **{k: float(v) if math.isfinite(float(v)) else None for k, v in scalars.items()}}
        with self.path.open("a") as file:
            file.write(json.dumps(record) + "\n")
        if self._board is not None:
            for key, value in scalars.items():
                self._board.add_scalar(key, float(value), int(step))
            self._board.flush()

    def close(self) -> None:
        if self._board is not None:
            self._board.close()
            self._board = None


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """The records of a run's metrics.jsonl, oldest first."""
    path = Path(run_dir) / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
