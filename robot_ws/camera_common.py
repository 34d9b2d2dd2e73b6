"""What every hardware camera driver shares: the capture thread, reconnects, the newest-frame slot
and the fps / dropped-frame counters.

A driver subclasses `ThreadedCamera` and supplies three steps: open the device, grab one frame,
release the device. The base class runs them on a background thread, keeps only the newest
frame (a policy wants the present, not a queue of the past), and reopens the device when it
stops delivering, so an unplugged camera comes back without restarting the node.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from collections import deque

from tether.config import CameraConfig
from tether.robot_ws.interfaces import CameraDriver, DeviceError, Frame

log = logging.getLogger(__name__)

FPS_WINDOW_S = 1.0  # measured fps is over the frames delivered in the last second or so
RETRY_S = 0.5  # how often a lost device is looked for again


class FrameStats:
    """Delivered-fps over a sliding window and dropped frames counted from sequence gaps."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()
        self._last_sequence: int | None = None
        self.dropped = 0

    def add(self, sequence: int, now: float) -> None:
        if self._last_sequence is not None and sequence > self._last_sequence + 1:
            self.dropped += sequence - self._last_sequence - 1
        self._last_sequence = sequence  # a smaller number is a device restart: count afresh from it
        self._times.append(now)
        while self._times and self._times[0] < now - FPS_WINDOW_S:
            self._times.popleft()

    def fps(self, now: float) -> float:
        recent = [t for t in self._times if t >= now - FPS_WINDOW_S]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0]) if recent[-1] > recent[0] else 0.0


class ThreadedCamera(CameraDriver):
    """A camera whose capture runs on its own thread; `read` hands out the newest frame only."""

    def __init__(self, config: CameraConfig, first_frame_timeout_s: float = 5.0) -> None:
        self.config = config
        self.first_frame_timeout_s = first_frame_timeout_s
        self._lock = threading.Condition()
        self._frame: Frame | None = None
        self._stats = FrameStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._open_now = False
        self.reconnects = 0
        self.last_error: str | None = None

    @property
    def label(self) -> str:
        """How errors name this camera: rig name, backend and device."""
        return f"camera '{self.config.name}' ({self.config.backend} {self.config.device})"

    # --- what a backend supplies ---------------------------------------------------------

    @abstractmethod
    def _open(self) -> None:
        """Find and start the device; raise DeviceError naming the reason if it cannot."""

    @abstractmethod
    def _grab(self) -> Frame | None:
        """Block for the next frame (about a second at most); None on a timeout, DeviceError if lost."""

    @abstractmethod
    def _release(self) -> None:
        """Stop the device; must not raise."""

    # --- the contract ---------------------------------------------------------------------

    def connect(self) -> None:
        """Open the device now (a missing one fails here, not later) and wait for its first frame."""
        self._stop.clear()
        self._open()
        self._open_now = True
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.config.name}", daemon=True)
        self._thread.start()
        with self._lock:
            if not self._lock.wait_for(lambda: self._frame is not None, self.first_frame_timeout_s):
                self.close()
                raise DeviceError(f"{self.label}: no frame within {self.first_frame_timeout_s:g} s of starting")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self._open_now:
            self._release()
            self._open_now = False

    def read(self, max_age_s: float) -> Frame:
        with self._lock:
            frame = self._frame
        if frame is None:
            raise DeviceError(f"{self.label}: no frame yet ({self.last_error or 'not connected'})")
        age = time.time() - frame.stamp
        if age > max_age_s:
            reason = f"; {self.last_error}" if self.last_error else ""
            raise DeviceError(f"{self.label}: newest frame is {age:.3f} s old (limit {max_age_s:g} s){reason}")
        return frame

    def wait_newer(self, sequence: int, timeout_s: float) -> Frame | None:
        """The first frame after `sequence`, or None on timeout."""
        with self._lock:
            self._lock.wait_for(lambda: self._frame is not None and self._frame.sequence != sequence, timeout_s)
            return self._frame if self._frame is not None and self._frame.sequence != sequence else None

    @property
    def measured_fps(self) -> float:
        with self._lock:
            return self._stats.fps(time.monotonic())

    @property
    def dropped_frames(self) -> int:
        with self._lock:
            return self._stats.dropped

    @property
    def connected(self) -> bool:
        """Whether the device is open and delivering (False while it is being looked for again)."""
        return self._open_now and self.last_error is None

    # --- the capture thread ---------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._open_now:
                try:
                    self._open()
                except DeviceError as error:
                    self._note_error(str(error))
                    self._stop.wait(RETRY_S)
                    continue
                self._open_now = True
                self.reconnects += 1
                log.info("%s: reconnected", self.label)
            try:
                frame = self._grab()
            except DeviceError as error:
                self._note_error(str(error))
                self._release()
                self._open_now = False
                continue
            if frame is None:
                continue
            with self._lock:
                self._frame = frame
                self._stats.add(frame.sequence, time.monotonic())
                self.last_error = None
                self._lock.notify_all()

    def _note_error(self, message: str) -> None:
        if message != self.last_error:
            log.warning("%s", message)
        self.last_error = message
