"""USB / V4L2 cameras and video files through OpenCV.

Frames are stamped when `grab()` returns, before decoding, which is the closest OpenCV gets to
the moment of capture. V4L2 gives no frame counter, so the sequence number counts grabs and a
dropped frame is inferred from a gap of more than one and a half frame periods between stamps.

A video file plays at its own frame rate (not as fast as it decodes) and starts again when it
ends, so it stands in for a camera in tests and demos.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2

from tether.config import CameraConfig
from tether.imaging import crop_resize
from tether.robot_ws.camera_common import ThreadedCamera
from tether.robot_ws.interfaces import DeviceError, Frame

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")


def _source(device: str | int) -> str | int:
    """An int or a digit string is a V4L2 index; anything else is a path (device node or file)."""
    if isinstance(device, int) or (isinstance(device, str) and device.isdigit()):
        return int(device)
    return device


class OpenCVCamera(ThreadedCamera):
    """A V4L2 device (index or /dev/videoN) or a video file."""

    def __init__(self, config: CameraConfig) -> None:
        super().__init__(config)
        self._source = _source(config.device)
        self._is_file = isinstance(self._source, str) and self._source.lower().endswith(VIDEO_SUFFIXES)
        self._capture: cv2.VideoCapture | None = None
        self._sequence = 0
        self._last_stamp: float | None = None
        self._period = 1.0 / config.fps

    def _open(self) -> None:
        if self._is_file and not Path(self._source).is_file():
            raise DeviceError(f"{self.label}: video file not found")
        capture = cv2.VideoCapture(self._source)
        if not capture.isOpened():
            capture.release()
            raise DeviceError(f"{self.label}: cannot open (missing device or unsupported file)")
        width, height = self.config.resolution
        if self._is_file:
            self._period = 1.0 / (capture.get(cv2.CAP_PROP_FPS) or self.config.fps)
        else:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            capture.set(cv2.CAP_PROP_FPS, self.config.fps)
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver from queueing old frames
        got = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if got != (width, height):
            capture.release()
            raise DeviceError(f"{self.label}: delivers {got[0]}x{got[1]}, the rig expects {width}x{height}")
        self._capture = capture
        self._last_stamp = None

    def _grab(self) -> Frame | None:
        assert self._capture is not None
        if self._is_file and self._last_stamp is not None:
            time.sleep(max(0.0, self._last_stamp + self._period - time.time()))
        if not self._capture.grab():
            raise DeviceError(f"{self.label}: stopped delivering frames" + (" (end of file)" if self._is_file else ""))
        stamp = time.time()
        ok, bgr = self._capture.retrieve()
        if not ok:
            raise DeviceError(f"{self.label}: frame could not be decoded")
        if self._last_stamp is not None:
            missed = round((stamp - self._last_stamp) / self._period) - 1
            self._sequence += max(0, missed)  # gaps show up as dropped frames in FrameStats
        self._sequence += 1
        self._last_stamp = stamp
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return Frame(image=crop_resize(rgb, self.config.crop, self.config.output_size), stamp=stamp, sequence=self._sequence)

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
