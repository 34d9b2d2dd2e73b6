"""Intel RealSense cameras through pyrealsense2, opened by serial number (or a recorded .db3 file).

The driver uses librealsense's sensor API (open each sensor, start it into a `syncer`) rather than
`rs.pipeline`, because the same calls then work for a USB camera, a recording played back and a
`software_device` fed by a test, so tests exercise the code that runs on the robot. Several
cameras are several drivers; each opens only its own serial.

Frames carry the camera's hardware timestamp, converted to the wall / ROS clock: librealsense's
global time where the firmware provides it, otherwise a `DeviceClock` over the raw hardware
clock. Colour exposure and white balance are fixed from the rig when given (auto otherwise);
depth, when enabled, is aligned to the colour image and cropped / resized with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pyrealsense2 as rs

from tether.config import CameraConfig
from tether.imaging import crop_resize
from tether.robot_ws.camera_common import ThreadedCamera
from tether.robot_ws.clock import DeviceClock
from tether.robot_ws.interfaces import DeviceError, Frame

log = logging.getLogger(__name__)

RECORDING_SUFFIXES = (".db3", ".bag")
COLOR_EXPOSURE_UNIT_US = 100.0  # librealsense's RGB exposure option counts 100 us steps (depth counts 1 us)
FRAME_TIMEOUT_MS = 1000

DeviceFinder = Callable[[str], "rs.device"]

SOFTWARE_DEVICES: dict[str, DeviceFinder] = {}
"""This process's software cameras (pyrealsense2 `software_device`), by serial. librealsense does not list a
software device among a context's devices (2.59, not even after `add_to(context)`), so whoever makes one
registers its finder here (`SoftwareRealSense(..., register=True)`) and `find_device` looks here first: a
rig then names it by serial like a plugged-in camera, and the graph builds its driver unchanged."""


def connected_serials() -> list[str]:
    """Serial numbers of the RealSense cameras plugged in now."""
    return [d.get_info(rs.camera_info.serial_number) for d in rs.context().query_devices()]


def find_device(device: str) -> rs.device:
    """The plugged-in (or registered software) camera with this serial, or the recording at this path (played in
    real time)."""
    if device in SOFTWARE_DEVICES:
        return SOFTWARE_DEVICES[device](device)
    if device.endswith(RECORDING_SUFFIXES):
        if not Path(device).is_file():
            raise DeviceError(f"realsense recording {device}: file not found")
        playback = rs.context().load_device(device)
        playback.as_playback().set_real_time(True)
        return playback
    for candidate in rs.context().query_devices():
        if candidate.get_info(rs.camera_info.serial_number) == device:
            return candidate
    found = ", ".join(connected_serials()) or "none"
    raise DeviceError(f"realsense {device}: not connected (serials found: {found})")


def _video_profile(device: rs.device, stream: rs.stream, fmt: rs.format, size: tuple[int, int], fps: float):
    """The (sensor, profile) streaming `stream` at this size and rate, or DeviceError listing what exists."""
    offered = []
    for sensor in device.query_sensors():
        for profile in sensor.get_stream_profiles():
            if profile.stream_type() != stream or not profile.is_video_stream_profile():
                continue
            video = profile.as_video_stream_profile()
            offered.append(f"{video.width()}x{video.height()}@{video.fps()} {video.format()}")
            if (video.width(), video.height()) == tuple(size) and video.fps() == round(fps) and video.format() == fmt:
                return sensor, profile
    raise DeviceError(
        f"realsense {device.get_info(rs.camera_info.serial_number)}: no {stream} stream "
        f"{size[0]}x{size[1]}@{fps:g} {fmt} (offered: {', '.join(sorted(set(offered))) or 'none'})"
    )


def _set_option(sensor: rs.sensor, option: rs.option, value: float) -> None:
    """Set an option clamped to its range; a sensor without it (a recording) is left alone."""
    if not sensor.supports(option) or sensor.is_option_read_only(option):
        return
    limits = sensor.get_option_range(option)
    sensor.set_option(option, float(np.clip(value, limits.min, limits.max)))


class RealSenseCamera(ThreadedCamera):
    """One RealSense camera by serial: colour (rgb8) and optionally depth aligned to it."""

    def __init__(self, config: CameraConfig, find: DeviceFinder = find_device) -> None:
        super().__init__(config)
        self._find = find
        self._sensors: list[rs.sensor] = []
        self._syncer: rs.syncer | None = None
        self._align = rs.align(rs.stream.color) if config.depth else None
        self._clock = DeviceClock()

    def _open(self) -> None:
        device = self._find(str(self.config.device))
        size, fps = self.config.resolution, self.config.fps
        wanted = [_video_profile(device, rs.stream.color, rs.format.rgb8, size, fps)]
        if self.config.depth:
            wanted.append(_video_profile(device, rs.stream.depth, rs.format.z16, size, fps))
        color_sensor = wanted[0][0]
        if self.config.exposure_us is not None:
            _set_option(color_sensor, rs.option.enable_auto_exposure, 0)
            _set_option(color_sensor, rs.option.exposure, self.config.exposure_us / COLOR_EXPOSURE_UNIT_US)
        if self.config.white_balance_k is not None:
            _set_option(color_sensor, rs.option.enable_auto_white_balance, 0)
            _set_option(color_sensor, rs.option.white_balance, self.config.white_balance_k)
        for sensor, _ in wanted:
            _set_option(sensor, rs.option.global_time_enabled, 1)
        self._syncer = rs.syncer(2)
        try:
            for sensor, profile in wanted:
                sensor.open(profile)
                self._sensors.append(sensor)
                sensor.start(self._syncer)
        except RuntimeError as error:
            self._release()
            raise DeviceError(f"{self.label}: cannot start streaming: {error}") from None
        self._clock = DeviceClock()

    def _grab(self) -> Frame | None:
        assert self._syncer is not None
        ok, frames = self._syncer.try_wait_for_frames(FRAME_TIMEOUT_MS)
        received = time.time()
        if not ok:
            raise DeviceError(f"{self.label}: no frame for {FRAME_TIMEOUT_MS} ms (unplugged?)")
        frames = frames.as_frameset()
        if self._align is not None:
            if not frames.get_depth_frame():
                return None  # the syncer hands out lone frames until both streams are matched
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        if not color:
            return None
        rgb = np.asanyarray(color.get_data())
        image = crop_resize(rgb, self.config.crop, self.config.output_size)
        depth = None
        if self._align is not None:
            raw = np.asanyarray(frames.get_depth_frame().get_data())
            depth = self._depth_mm(raw, frames.get_depth_frame())
        return Frame(image=image, stamp=self._wall_time(color, received), sequence=color.get_frame_number(), depth=depth)

    def _depth_mm(self, raw: np.ndarray, frame: rs.depth_frame) -> np.ndarray:
        """Depth in millimetres, cropped and resized like the colour image (nearest, so no blended edges)."""
        millimetres = raw.astype(np.float32) * (frame.get_units() * 1000.0)
        if self.config.crop is not None:
            x0, y0, x1, y1 = self.config.crop
            millimetres = millimetres[y0:y1, x0:x1]
        resized = cv2.resize(millimetres, tuple(self.config.output_size), interpolation=cv2.INTER_NEAREST)
        return np.clip(resized, 0, np.iinfo(np.uint16).max).astype(np.uint16)

    def _wall_time(self, frame: rs.frame, received: float) -> float:
        seconds = frame.get_timestamp() / 1000.0
        if frame.get_frame_timestamp_domain() == rs.timestamp_domain.hardware_clock:
            return self._clock.to_wall(seconds, received)
        return seconds  # global_time / system_time: librealsense already put it on the host clock

    def _release(self) -> None:
        for sensor in self._sensors:
            for step in (sensor.stop, sensor.close):
                try:
                    step()
                except RuntimeError as error:  # an unplugged sensor may refuse; it is gone either way
                    log.debug("%s: %s", self.label, error)
        self._sensors = []
        self._syncer = None

    @property
    def intrinsics(self) -> rs.intrinsics | None:
        """The factory intrinsics of the colour stream (before crop / resize), when connected."""
        for sensor in self._sensors:
            for profile in sensor.get_active_streams():
                if profile.stream_type() == rs.stream.color:
                    return profile.as_video_stream_profile().get_intrinsics()
        return None
