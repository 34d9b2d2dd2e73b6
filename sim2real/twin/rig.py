"""The twin of any rig: the same limits, rates, task and ranges, with the twin standing in for the hardware.

Training in the twin for a real rig must see that rig's workspace box, speed limits, action scale
and control rate, or the policy's actions mean something else on the robot. `twin_rig` keeps
every setting the twin can honour and swaps the backends: the arm becomes the twin arm, and a
hardware camera with a known pose becomes a twin camera at that pose (one without a pose cannot
be rendered and is left out).
"""

from __future__ import annotations

from tether.config import CameraConfig, RigConfig, TwinArm


def _twin_camera(camera: CameraConfig) -> CameraConfig | None:
    if camera.backend == "twin":
        return camera
    if camera.pose is None:
        return None
    return camera.model_copy(update={"backend": "twin", "device": None, "depth": False})


def twin_rig(rig: RigConfig) -> RigConfig:
    """`rig` with the twin as arm and cameras; a twin rig comes back unchanged."""
    if isinstance(rig.arm, TwinArm):
        return rig
    shared = (set(TwinArm.model_fields) & set(type(rig.arm).model_fields)) - {"backend"}
    arm = TwinArm(**{name: getattr(rig.arm, name) for name in shared})
    cameras = [twin for twin in map(_twin_camera, rig.cameras) if twin is not None]
    return rig.model_copy(update={"name": f"{rig.name}_twin", "arm": arm, "cameras": cameras})
