"""What the ROS 2 nodes need from hardware: the arm backend and camera driver contracts.

The arm node and the camera node talk only to these classes, so the twin, a Franka through
franky, a MoveIt Servo arm, a RealSense or an OpenCV camera are interchangeable by rig.
Devices are context managers (connect on enter, release on exit); reads say how fresh
they are and raise rather than hand back stale data.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from dataclasses import dataclass

import numpy as np

from tether.types import Device, DeviceError

__all__ = ["ArmBackend", "ArmState", "CameraDriver", "Device", "DeviceError", "Frame"]


@dataclass(frozen=True)
class ArmState:
    """One reading of the arm, in the base frame (m, rad, N)."""

    stamp: float  # acquisition time, seconds on the ROS / wall clock
    joint_positions: np.ndarray  # (7,)
    joint_velocities: np.ndarray  # (7,)
    joint_efforts: np.ndarray  # (7,)
    tcp_pose: np.ndarray  # (7,) xyz + quaternion xyzw
    tcp_twist: np.ndarray  # (6,) linear + angular
    wrench: np.ndarray  # (6,) force + torque at the TCP
    gripper: float  # opening in [0, 1], 1 = fully open


class ArmBackend(Device):
    """An arm the arm node can drive. Targets arrive already checked and clipped by the arm node."""

    joint_names: tuple[str, ...] = tuple(f"joint{i}" for i in range(1, 8))

    @abstractmethod
    def state(self) -> ArmState:
        """The latest state; raises DeviceError if the arm stopped reporting."""

    @abstractmethod
    def move_toward(self, position: np.ndarray, quat_xyzw: np.ndarray) -> None:
        """Track this TCP target from now on (non-blocking; called once per control tick)."""

    @abstractmethod
    def hold(self) -> None:
        """Stay where the arm is now (watchdog, e-stop, rejected command); forget earlier targets, so
        nothing later (a gripper command) sends the arm back to one."""

    @abstractmethod
    def set_gripper(self, command: int) -> None:
        """+1 close, -1 open, 0 leave as it is; never blocks the control loop."""

    @abstractmethod
    def home(self, abort: threading.Event | None = None) -> None:
        """Move to the rig's home joints (blocking; called from the reset/home services). Once `abort`
        is set (an e-stop) the motion stops where it is and this raises DeviceError."""

    def recover(self) -> None:
        """Clear a reflex / error state if the hardware has one (default: nothing to do)."""


@dataclass(frozen=True)
class Frame:
    """One camera frame, already cropped and resized to the rig's output size."""

    image: np.ndarray  # uint8 (H, W, 3) RGB
    stamp: float  # acquisition time (hardware timestamp converted to the ROS / wall clock)
    sequence: int  # the device's frame counter; gaps are dropped frames
    depth: np.ndarray | None = None  # uint16 (H, W) millimetres, aligned to image, if enabled


class CameraDriver(Device):
    """A camera the camera node can publish. Capture runs on the driver's own thread."""

    @abstractmethod
    def read(self, max_age_s: float) -> Frame:
        """The newest frame; raises DeviceError if none is newer than `max_age_s`."""

    @abstractmethod
    def wait_newer(self, sequence: int, timeout_s: float) -> Frame | None:
        """Block until a frame other than `sequence` is the newest and return it; None on timeout. The camera
        node publishes each frame the moment it lands, so a frame's age when the actor sees it is transport,
        not polling."""

    @property
    @abstractmethod
    def measured_fps(self) -> float:
        """Frames per second actually delivered over the last second or so."""

    @property
    @abstractmethod
    def dropped_frames(self) -> int:
        """Frames the device produced that were never delivered (sequence gaps)."""
