"""The lab's cameras: renders of the shared world state streamed as RealSense devices.

Each camera is a `SoftwareRealSense` (pyrealsense2's `software_device`) registered under its serial,
so tether's RealSense driver, built by the graph from the rig file, opens it like a USB camera. Its
feeder thread asks `CameraRender` for a frame at the stream's rate; that renders the camera from the
latest qpos the server published, with its own `MjData` and `mujoco.Renderer` created on that thread
(an EGL context is current on one thread at a time). Only this process can open the devices.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable

import mujoco
import numpy as np

from benchmarks.lab.shared import WorldState

RENDER_NICE = 10
"""Scheduling niceness of the render threads: with two cores, physics (the server process) comes first, so a
busy machine costs the cameras frames rather than franky-sim real time."""


def focal_px(height: int, fovy_deg: float) -> float:
    """The pinhole focal length (pixels) of a render of this height and vertical field of view."""
    return 0.5 * height / math.tan(math.radians(fovy_deg) / 2)


class CameraRender:
    """Renders one named MJCF camera of the lab's model from the world state, at the capture size.

    Only while `wanted()` (the device is streamed to a driver): otherwise it hands out the last frame, so a
    camera nobody opened costs franky-sim no real time.
    """

    def __init__(self, model: mujoco.MjModel, world: WorldState, camera: str, size: tuple[int, int]) -> None:
        self.model, self.world, self.camera, self.size = model, world, camera, size
        model.camera(camera)  # fails here, not on the feeder thread, for an unknown name
        self.wanted: Callable[[], bool] = lambda: True
        self._last = np.zeros((size[1], size[0], 3), np.uint8)
        self._local = threading.local()
        self.frames = 0
        self.seconds = 0.0
        """Rendering time spent, for the lab's figures."""

    def __call__(self, frame_number: int) -> np.ndarray:
        if not self.wanted():
            return self._last
        local = self._local
        if not hasattr(local, "renderer"):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), RENDER_NICE)  # llvmpipe's threads inherit it
            local.data = mujoco.MjData(self.model)
            local.renderer = mujoco.Renderer(self.model, self.size[1], self.size[0])
        started = time.perf_counter()
        local.data.qpos[:] = self.world.read().qpos[: self.model.nq]
        mujoco.mj_kinematics(self.model, local.data)
        mujoco.mj_camlight(self.model, local.data)
        local.renderer.update_scene(local.data, camera=self.camera)
        self._last = local.renderer.render()
        self.seconds += time.perf_counter() - started
        self.frames += 1
        return self._last
