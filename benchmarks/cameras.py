"""Per-frame cost of the camera driver path: capture -> crop / resize -> ROS Image message.

A software RealSense (librealsense's `software_device`, fed from numpy at 30 fps) stands in for
the camera, so the figures are the driver's own cost, not USB's. For 640x480 and 1280x720 capture
(output 128x128, as the policy sees it) it reports the frames/s delivered, dropped frames, CPU
time per frame of the driver's capture thread and of the publishing loop (per-thread CPU clocks;
librealsense's internal threads and the fake camera's feeder are not counted), and the age of each
frame when its message is built (now - hardware timestamp mapped to the wall clock), p50 / p99.

    .venv/bin/python -m benchmarks.cameras [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np

from benchmarks.report import markdown_table, write_results
from tether.config import CameraConfig
from tether.robot_ws.camera_realsense import RealSenseCamera
from tether.robot_ws.messages import image_msg
from tether.robot_ws.realsense_software import SoftwareRealSense

FPS = 30


def thread_cpu(thread: threading.Thread) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def run(size: tuple[int, int], seconds: float) -> dict:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)  # camera-like content, not a flat colour
    config = CameraConfig(name="bench", backend="realsense", device="0000", resolution=size, fps=FPS, crop=(size[0] // 8, 0, size[0] * 7 // 8, size[1]))
    with SoftwareRealSense("0000", size=size, fps=FPS, image=lambda n: noise) as soft, RealSenseCamera(config, find=soft.find) as camera:
        capture = camera._thread
        first = camera.read(max_age_s=1.0)
        ages, frames, sequence = [], 0, first.sequence
        cpu_capture, cpu_publish = thread_cpu(capture), time.thread_time()
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            frame = camera.wait_newer(sequence, timeout_s=1.0)
            if frame is None:
                continue
            image_msg(frame.image, frame.stamp, "bench")
            ages.append(time.time() - frame.stamp)
            sequence, frames = frame.sequence, frames + 1
        elapsed = time.monotonic() - start
        cpu_capture, cpu_publish = thread_cpu(capture) - cpu_capture, time.thread_time() - cpu_publish
        dropped = camera.dropped_frames
    ages_ms = np.array(ages) * 1000
    return {
        "capture": f"{size[0]}x{size[1]}",
        "frames_per_s": frames / elapsed,
        "dropped_frames": dropped,
        "capture_cpu_ms_per_frame": 1000 * cpu_capture / max(frames, 1),
        "publish_cpu_ms_per_frame": 1000 * cpu_publish / max(frames, 1),
        "age_p50_ms": float(np.percentile(ages_ms, 50)),
        "age_p99_ms": float(np.percentile(ages_ms, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    rows = [run(size, args.seconds) for size in ((640, 480), (1280, 720))]
    keys = ["capture", "frames_per_s", "dropped_frames", "capture_cpu_ms_per_frame", "publish_cpu_ms_per_frame", "age_p50_ms", "age_p99_ms"]
    table = markdown_table(
        ["capture (-> 128x128)", "frames/s (30 offered)", "dropped", "capture thread CPU ms/frame", "publish CPU ms/frame", "age p50 ms", "age p99 ms"],
        [[row[k] for k in keys] for row in rows],
    )
    notes = (
        f"`.venv/bin/python -m benchmarks.cameras --seconds {args.seconds:g}`: a software RealSense at {FPS} fps "
        "(random pixels, crop to the middle 3/4 of the width, resize to 128x128, `sensor_msgs/Image` built per frame). "
        "CPU is per-thread CPU time; librealsense's own threads and the fake camera's feeder are not counted. "
        "Age is publish time minus the frame's hardware timestamp mapped to the wall clock, where the mapping "
        "counts the smallest delay seen as zero, so it is the delay beyond the best case. "
        f"2-core machine shared with other jobs (1-min load average {os.getloadavg()[0]:.1f} at the end)."
    )
    write_results("cameras", {"seconds": args.seconds, "rows": rows}, table, notes)
    print(table)


if __name__ == "__main__":
    main()
