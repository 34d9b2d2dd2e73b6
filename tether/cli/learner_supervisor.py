"""Keeping `tether train hil`'s learner process alive, so a learner crash never stops the robot side.

A learner that dies is started again after a back-off (1 s, doubling per restart, at most 30 s);
the new process resumes from the run directory's last checkpoint and buffers. After
`max_restarts` restarts the next death is final and `error` says so in one line. The running
learner's process id is in `learner.pid` in the run directory, for operators and tests.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

PID_FILE = "learner.pid"
BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0


class LearnerGaveUp(RuntimeError):
    """The learner kept dying and was given up on; `summary` is the run's summary up to then."""

    def __init__(self, message: str, summary: dict) -> None:
        super().__init__(message)
        self.summary = summary


class LearnerSupervisor:
    """Starts the learner with `start`, notices its death in `check`, restarts it or gives up."""

    def __init__(
        self, start: Callable[[], subprocess.Popen], run_dir: Path, *, max_restarts: int,
        backoff_s: float = BACKOFF_S, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._start = start
        self.run_dir = Path(run_dir)
        self.max_restarts = max_restarts
        self.backoff_s = backoff_s
        self._clock = clock
        self.restarts = 0
        self.error: str | None = None
        self._restart_at: float | None = None
        self.process: subprocess.Popen | None = None
        self._launch()

    @property
    def pid_file(self) -> Path:
        return self.run_dir / PID_FILE

    def _launch(self) -> None:
        self.process = self._start()
        self.pid_file.write_text(f"{self.process.pid}\n")

    def check(self, may_restart: bool = True) -> int | None:
        """Poll the learner: its exit code the first time it is found dead (else None), and a restart once
        its back-off has passed. With `may_restart` False (it never came up) a death is final at once."""
        if self.process is not None and self.process.poll() is not None:
            code = self.process.returncode
            self.process = None
            self.pid_file.unlink(missing_ok=True)
            log = self.run_dir / "learner.log"
            if not may_restart:
                self.error = f"learner exited with {code} before it sent weights; see {log}"
            elif self.restarts >= self.max_restarts:
                self.error = f"learner exited with {code} after {self.restarts} restarts, given up; see {log}"
            else:
                self._restart_at = self._clock() + min(self.backoff_s * 2**self.restarts, MAX_BACKOFF_S)
            return code
        if self._restart_at is not None and self._clock() >= self._restart_at:
            self._restart_at = None
            self.restarts += 1
            self._launch()
        return None

    @property
    def gave_up(self) -> bool:
        return self.error is not None

    def stop(self, stop_process: Callable[[subprocess.Popen], int]) -> None:
        """Stop the running learner (if one runs) with `stop_process`; no restart after this."""
        self._restart_at = None
        if self.process is not None:
            stop_process(self.process)
            self.process = None
        self.pid_file.unlink(missing_ok=True)
