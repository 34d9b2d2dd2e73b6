"""Camera drivers with the real libraries: pyrealsense2's software_device and a recorded .db3
played back, OpenCV reading a generated video file. Unplugging is simulated by stopping the
source. Nothing is mocked except the USB camera itself (the software_device stands in for it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pyrealsense2 as rs
import pytest

from tether.config import CameraConfig
from tether.robot_ws.camera_common import FrameStats
from tether.robot_ws.camera_opencv import OpenCVCamera
from tether.robot_ws.camera_realsense import RealSenseCamera
from tether.robot_ws.clock import DeviceClock
from tether.robot_ws.drivers import make_camera
from tether.robot_ws.interfaces import DeviceError
from tether.robot_ws.realsense_software import SoftwareRealSense

W, H = 320, 240
FRESH = 2.0  # generous freshness bound for reads on a loaded CI machine


def realsense_config(serial: str, **overrides) -> CameraConfig:
    fields = dict(name="front", backend="realsense", device=serial, resolution=(W, H), fps=30, output_size=(64, 48))
    return CameraConfig(**(fields | overrides))


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def halves(number: int) -> np.ndarray:
    """Left half red, right half blue; the green channel carries the frame number."""
    image = np.zeros((H, W, 3), np.uint8)
    image[:, : W // 2, 0] = 255
    image[:, W // 2 :, 2] = 255
    image[..., 1] = number % 256
    return image


def test_realsense_by_serial_delivers_fresh_cropped_frames_with_settings_applied():
    config = realsense_config("0001", crop=(W // 2, 0, W, H), exposure_us=5000, white_balance_k=4000)
    with SoftwareRealSense("0001", size=(W, H), image=halves) as soft:
        started = time.time()
        with RealSenseCamera(config, find=soft.find) as camera:
            frame = camera.read(max_age_s=FRESH)
            assert frame.image.shape == (48, 64, 3) and frame.image.dtype == np.uint8
            assert (frame.image[..., 0] == 0).all() and (frame.image[..., 2] == 255).all()  # the crop kept the right half
            assert frame.image[0, 0, 1] == frame.sequence % 256  # the pixels belong to this frame number
            assert started <= frame.stamp <= time.time()  # hardware clock mapped onto the wall clock
            assert frame.depth is None
            later = camera.wait_newer(frame.sequence, timeout_s=5.0)
            assert later is not None and later.sequence > frame.sequence and later.stamp > frame.stamp
            assert soft.option(rs.option.enable_auto_exposure) == 0
            assert soft.option(rs.option.exposure) == 50  # 5000 us in the colour sensor's 100 us steps
            assert soft.option(rs.option.enable_auto_white_balance) == 0
            assert soft.option(rs.option.white_balance) == 4000
            assert camera.intrinsics.width == W


def test_realsense_aligned_depth_comes_with_each_frame():
    with SoftwareRealSense("0002", size=(W, H), depth_mm=750) as soft:
        with RealSenseCamera(realsense_config("0002", depth=True), find=soft.find) as camera:
            frame = camera.read(max_age_s=FRESH)
            assert frame.depth is not None and frame.depth.shape == (48, 64) and frame.depth.dtype == np.uint16
            assert np.median(frame.depth) == 750


def test_several_realsense_cameras_each_read_their_own_serial():
    def solid(value: int) -> Callable[[int], np.ndarray]:
        return lambda number: np.full((H, W, 3), value, np.uint8)

    with SoftwareRealSense("1111", size=(W, H), image=solid(40)) as a, SoftwareRealSense("2222", size=(W, H), image=solid(200)) as b:
        devices = {"1111": a, "2222": b}

        def find(serial: str) -> rs.device:
            return devices[serial].find(serial)

        front = RealSenseCamera(realsense_config("1111"), find=find)
        wrist = RealSenseCamera(realsense_config("2222").model_copy(update={"name": "wrist"}), find=find)
        with front, wrist:
            assert (front.read(FRESH).image == 40).all()
            assert (wrist.read(FRESH).image == 200).all()


def test_realsense_unplug_gives_a_clear_error_and_the_camera_comes_back():
    with SoftwareRealSense("0003", size=(W, H)) as soft:
        with RealSenseCamera(realsense_config("0003"), find=soft.find) as camera:
            before = camera.read(FRESH)
            soft.pause()  # cable out
            # First the grab times out ("no frame ... unplugged?"), then the search for the device fails.
            wait_until(lambda: not camera.connected and "not connected" in (camera.last_error or ""))
            with pytest.raises(DeviceError, match=r"camera 'front' \(realsense 0003\): newest frame is .* old.*not connected"):
                camera.read(max_age_s=0.0)
            soft.resume()  # cable back in
            wait_until(lambda: camera.connected and camera.read(FRESH).sequence > before.sequence)
            assert camera.reconnects == 1


def test_realsense_dropped_frames_are_counted_from_sequence_gaps():
    with SoftwareRealSense("0004", size=(W, H)) as soft:
        with RealSenseCamera(realsense_config("0004"), find=soft.find) as camera:
            first = camera.read(FRESH).sequence
            soft.skip = set(range(first + 5, first + 8))  # three frames the camera never sends
            wait_until(lambda: camera.read(FRESH).sequence > first + 12)
            assert camera.dropped_frames == 3
            assert camera.measured_fps > 0


def test_missing_realsense_is_one_line_naming_the_serial():
    with pytest.raises(DeviceError, match=r"^realsense 9999999: not connected \(serials found: .*\)$"):
        make_camera(realsense_config("9999999")).connect()


def test_realsense_recording_plays_back_through_the_driver(tmp_path: Path):
    path = str(tmp_path / "session.db3")
    with SoftwareRealSense("0005", size=(W, H), depth_mm=500) as soft:
        recorder = RealSenseCamera(realsense_config("0005", depth=True), find=lambda serial: rs.recorder(path, soft.find(serial)))
        with recorder:  # the driver itself records what it streams
            wait_until(lambda: recorder.read(FRESH).sequence > 15)
    assert Path(path).stat().st_size > 0
    started = time.time()
    with make_camera(realsense_config(path, depth=True)) as player:
        frame = player.read(FRESH)
        assert frame.image[0, 0, 0] == frame.sequence % 256
        assert np.median(frame.depth) == 500
        assert frame.stamp >= started  # recorded device times are mapped onto now


def test_device_clock_keeps_the_smallest_delay_and_relearns_after_a_reset():
    clock = DeviceClock(drift=0.0)
    assert clock.to_wall(10.0, 1000.05) == pytest.approx(1000.05)
    assert clock.to_wall(10.1, 1000.12) == pytest.approx(1000.12)  # smaller delay: better offset
    assert clock.to_wall(10.2, 1000.30) == pytest.approx(1000.22)  # late arrival: stamped when taken
    assert clock.to_wall(0.5, 2000.0) == pytest.approx(2000.0)  # device clock restarted


def test_device_clock_follows_a_slow_clock_only_within_its_drift_allowance():
    """A simulation server whose clock runs at 0.9x real time: with a drift allowance above its slowdown
    the stamps stay near arrival; with a real crystal's allowance they fall behind as the clock does."""
    tracking, strict = DeviceClock(drift=0.3), DeviceClock()
    for step in range(101):  # 10 s of wall time, states received at 10 Hz with no delay
        wall = 1000.0 + step * 0.1
        device = 0.9 * step * 0.1
        lag_tracking, lag_strict = wall - tracking.to_wall(device, wall), wall - strict.to_wall(device, wall)
    assert lag_tracking < 0.02
    assert lag_strict == pytest.approx(1.0, abs=0.01)


def test_frame_stats_fps_and_drops():
    stats = FrameStats()
    for i in range(11):
        stats.add(sequence=i if i < 5 else i + 2, now=100.0 + i * 0.05)
    assert stats.dropped == 2
    assert stats.fps(now=100.5) == pytest.approx(20.0)


# --- OpenCV ------------------------------------------------------------------------------


def write_video(path: Path, frames: int = 45, fps: int = 30) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (W, H))
    assert writer.isOpened()
    for i in range(frames):
        image = np.zeros((H, W, 3), np.uint8)
        image[:, : W // 2] = (0, 0, 255)  # BGR: red on the left
        image[:, W // 2 :] = (255, 0, 0)  # blue on the right
        writer.write(image)
    writer.release()


def opencv_config(device: str | int, **overrides) -> CameraConfig:
    fields = dict(name="front", backend="opencv", device=device, resolution=(W, H), fps=30, output_size=(64, 48))
    return CameraConfig(**(fields | overrides))


def test_opencv_video_file_gives_newest_frames_stamped_at_capture(tmp_path: Path):
    video = tmp_path / "clip.avi"
    write_video(video)
    started = time.time()
    with make_camera(opencv_config(str(video), crop=(0, 0, W // 2, H))) as camera:
        assert isinstance(camera, OpenCVCamera)
        frame = camera.read(FRESH)
        assert frame.image.shape == (48, 64, 3)
        assert frame.image[..., 0].min() > 200 and frame.image[..., 2].max() < 50  # RGB, left (red) half kept
        assert started <= frame.stamp <= time.time()
        newer = camera.wait_newer(frame.sequence, timeout_s=5.0)
        assert newer is not None and newer.sequence > frame.sequence
        wait_until(lambda: camera.reconnects >= 1)  # the file ended and started again, like a camera


def test_opencv_file_removed_then_restored_reconnects(tmp_path: Path):
    video = tmp_path / "clip.avi"
    write_video(video, frames=15)
    with make_camera(opencv_config(str(video))) as camera:
        hidden = video.rename(tmp_path / "away.avi")  # the source is gone once the open file ends
        wait_until(lambda: camera.last_error is not None and "video file not found" in camera.last_error)
        with pytest.raises(DeviceError, match=r"camera 'front' \(opencv .*clip.avi\): newest frame is"):
            camera.read(max_age_s=0.0)
        hidden.rename(video)
        wait_until(lambda: camera.connected)
        assert camera.read(FRESH) is not None


@pytest.mark.parametrize("device, reason", [("/nonexistent/clip.avi", "video file not found"), ("/dev/video99", "cannot open")])
def test_missing_opencv_device_is_one_line(device: str, reason: str):
    with pytest.raises(DeviceError, match=rf"^camera 'front' \(opencv {device}\): {reason}"):
        make_camera(opencv_config(device)).connect()


def test_twin_cameras_are_not_hardware_drivers():
    twin = CameraConfig(name="front", backend="twin", pose={"pos": (1, 0, 1), "lookat": (0, 0, 0)})
    with pytest.raises(ValueError, match="twin node"):
        make_camera(twin)
