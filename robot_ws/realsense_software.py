"""A RealSense stand-in made with librealsense's own `software_device`, fed from numpy.

It has the sensors, streams, options and serial number of a colour + depth camera and delivers
frames through the real library, so the driver, its tests and `benchmarks/cameras.py` run the
code that runs on the robot, without a camera. `pause()` stops the frames (an unplugged cable)
and `resume()` restarts them; `skip` drops frame numbers to produce dropped frames. With
`register=True` it is in `SOFTWARE_DEVICES` while it runs, so the default `find_device` finds it
by serial (as a rig's camera driver built by the graph does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pyrealsense2 as rs

from tether.robot_ws.camera_realsense import SOFTWARE_DEVICES
from tether.robot_ws.interfaces import DeviceError

ImageSource = Callable[[int], np.ndarray]  # frame number -> uint8 (H, W, 3) RGB


def _intrinsics(width: int, height: int, fx: float) -> rs.intrinsics:
    intrinsics = rs.intrinsics()
    intrinsics.width, intrinsics.height = width, height
    intrinsics.fx = intrinsics.fy = fx
    intrinsics.ppx, intrinsics.ppy = width / 2, height / 2
    intrinsics.model = rs.distortion.none
    intrinsics.coeffs = [0.0] * 5
    return intrinsics


def counter_image(width: int, height: int) -> ImageSource:
    """Frames whose pixels all equal the frame number mod 256, so a test can tell which frame it got."""
    image = np.zeros((height, width, 3), np.uint8)

    def make(number: int) -> np.ndarray:
        image[:] = number % 256
        return image

    return make


class SoftwareRealSense:
    """A fake RealSense camera (colour rgb8 + depth z16 at one size and rate) on a feeder thread."""

    def __init__(
        self,
        serial: str,
        size: tuple[int, int] = (640, 480),
        fps: int = 30,
        image: ImageSource | None = None,
        depth_mm: int = 1000,
        *,
        fx: float | None = None,
        register: bool = False,
    ) -> None:
        self.serial, self.size, self.fps, self.register = serial, size, fps, register
        width, height = size
        self.image = image or counter_image(width, height)
        self.depth = np.full((height, width), depth_mm, np.uint16)
        self.device = rs.software_device()
        self.device.register_info(rs.camera_info.serial_number, serial)
        self.device.register_info(rs.camera_info.name, "tether software RealSense")
        intrinsics = _intrinsics(width, height, fx=0.9 * width if fx is None else fx)
        self._color_sensor = self.device.add_sensor("RGB Camera")
        self._depth_sensor = self.device.add_sensor("Stereo Module")
        self._color = self._color_sensor.add_video_stream(self._stream(rs.stream.color, rs.format.rgb8, 3, 0, intrinsics))
        self._depth = self._depth_sensor.add_video_stream(self._stream(rs.stream.depth, rs.format.z16, 2, 1, intrinsics))
        identity = rs.extrinsics()
        identity.rotation, identity.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
        self._depth.register_extrinsics_to(self._color, identity)
        self._depth_sensor.add_read_only_option(rs.option.depth_units, 0.001)
        # pyrealsense2 2.59's option_range(...) takes (min, max, default, step), whatever its docstring says.
        for option, limits in (
            (rs.option.exposure, (1, 10000, 156, 1)),
            (rs.option.enable_auto_exposure, (0, 1, 1, 1)),
            (rs.option.white_balance, (2800, 6500, 4600, 10)),
            (rs.option.enable_auto_white_balance, (0, 1, 1, 1)),
        ):
            self._color_sensor.add_option(option, rs.option_range(*limits), True)
        self.device.create_matcher(rs.matchers.default)
        self.number = 0
        self.skip: set[int] = set()
        self._running = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._epoch = time.monotonic()

    def _stream(self, kind: rs.stream, fmt: rs.format, bpp: int, uid: int, intrinsics: rs.intrinsics) -> rs.video_stream:
        stream = rs.video_stream()
        stream.type, stream.index, stream.uid = kind, 0, uid
        stream.width, stream.height = self.size
        stream.fps, stream.bpp, stream.fmt = self.fps, bpp, fmt
        stream.intrinsics = intrinsics
        return stream

    @property
    def streaming(self) -> bool:
        """Whether a client (a driver) has the colour stream open, so a costly image source can idle otherwise."""
        return bool(self._color_sensor.get_active_streams())

    def option(self, option: rs.option) -> float:
        return self._color_sensor.get_option(option)

    def find(self, serial: str) -> rs.device:
        """A device finder for `RealSenseCamera`: this camera while it is 'plugged in'."""
        if serial != self.serial or not self._running.is_set():
            raise DeviceError(f"realsense {serial}: not connected (serials found: none)")
        return self.device

    def __enter__(self) -> SoftwareRealSense:
        if self.register:
            SOFTWARE_DEVICES[self.serial] = self.find
        self._running.set()
        self._thread = threading.Thread(target=self._feed, name=f"soft-realsense-{self.serial}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.register:
            SOFTWARE_DEVICES.pop(self.serial, None)
        self._stop.set()
        self._running.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def _feed(self) -> None:
        period = 1.0 / self.fps
        next_time = time.monotonic()
        while not self._stop.is_set():
            self._running.wait()
            if self._stop.is_set():
                return
            self.number += 1
            if self.number not in self.skip:
                self._send(self.number, (time.monotonic() - self._epoch) * 1000.0)
            next_time = max(next_time + period, time.monotonic() - period)
            time.sleep(max(0.0, next_time - time.monotonic()))

    def _send(self, number: int, stamp_ms: float) -> None:
        width, _ = self.size
        for sensor, profile, pixels, bpp in (
            (self._color_sensor, self._color, self.image(number), 3),
            (self._depth_sensor, self._depth, self.depth, 2),
        ):
            frame = rs.software_video_frame()
            frame.pixels, frame.stride, frame.bpp = pixels, width * bpp, bpp
            frame.timestamp, frame.domain = stamp_ms, rs.timestamp_domain.hardware_clock
            frame.frame_number = number
            frame.profile = profile.as_video_stream_profile()
            if bpp == 2:
                frame.depth_units = 0.001
            sensor.on_video_frame(frame)
