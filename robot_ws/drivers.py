"""The one place a rig's camera and arm sections become driver objects.

Nodes call `make_camera` / `make_arm` and then talk only to the `CameraDriver` / `ArmBackend`
contracts, so a rig YAML switches hardware with no other change. Driver modules are imported
lazily: a twin-only machine never loads franky or librealsense.
"""

from __future__ import annotations

from tether.config import CameraConfig, FrankaArm, RigConfig, ServoArm
from tether.errors import needs_extra
from tether.robot_ws.interfaces import ArmBackend, CameraDriver


def make_camera(config: CameraConfig) -> CameraDriver:
    """A driver for one hardware camera of the rig (not yet connected: use it as a context manager)."""
    if config.backend == "realsense":
        with needs_extra(f"camera '{config.name}' (realsense)", "realsense"):
            from tether.robot_ws.camera_realsense import RealSenseCamera

        return RealSenseCamera(config)
    if config.backend == "opencv":
        from tether.robot_ws.camera_opencv import OpenCVCamera

        return OpenCVCamera(config)
    raise ValueError(f"camera '{config.name}': backend 'twin' is rendered by the twin node, not a camera driver")


def make_arm(rig: RigConfig) -> ArmBackend:
    """The arm backend of a hardware rig (not yet connected: use it as a context manager)."""
    arm = rig.arm
    if isinstance(arm, FrankaArm):
        with needs_extra(f"rig '{rig.name}': the Franka arm", "franka"):
            from tether.robot_ws.arm_franka import FrankaBackend

        return FrankaBackend(arm)
    if isinstance(arm, ServoArm):
        from tether.robot_ws.arm_servo import ServoBackend

        return ServoBackend(arm, rig.network)
    raise ValueError(f"rig '{rig.name}': arm backend '{arm.backend}' runs in the twin node, not through make_arm")
