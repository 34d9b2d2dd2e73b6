"""`tether calibrate camera`: ChArUco intrinsics and hand-eye extrinsics of one rig camera, written
back into the rig YAML so the twin renders from where the real camera is.

The arm moves itself through small random tilts and shifts around where it stands now and a
full-resolution frame is taken at each stop. For a wrist camera the board lies still in view;
for a fixed camera the hand holds the board facing it.
"""

from __future__ import annotations

import logging
import re
import time

import numpy as np
import typer
from scipy.spatial.transform import Rotation

from tether.config import TwinArm, load_rig, resolve_rig_path
from tether.robot_ws.calibration import (
    BoardSpec,
    CalibrationError,
    board_in_camera,
    calibrate_intrinsics,
    camera_pose,
    hand_eye,
    pose_matrix,
    write_to_rig,
)
from tether.robot_ws.drivers import make_arm, make_camera
from tether.robot_ws.interfaces import ArmBackend
from tether.safety import clip_to_box

log = logging.getLogger(__name__)
app = typer.Typer(help="Calibrate hardware.", no_args_is_help=True)

REACHED_M = 0.002
MOVE_TIMEOUT_S = 10.0
SETTLE_S = 0.5


def _go(arm: ArmBackend, position: np.ndarray, quat: np.ndarray, dt: float) -> None:
    """Track a pose until it is reached (or a timeout), then hold still."""
    deadline = time.monotonic() + MOVE_TIMEOUT_S
    while np.linalg.norm(arm.state().tcp_pose[:3] - position) > REACHED_M and time.monotonic() < deadline:
        arm.move_toward(position, quat)
        time.sleep(dt)
    arm.hold()
    time.sleep(SETTLE_S)


@app.command("camera")
def camera(
    rig: str = typer.Option(..., help="Rig name or YAML path; the calibration is written into it."),
    camera: str = typer.Option(..., "--camera", help="Name of the rig camera."),
    mount: str = typer.Option("", help="wrist or world; default: the camera's pose.mount, else world."),
    views: int = typer.Option(15, min=5, help="Arm poses to take a frame at."),
    tilt_deg: float = typer.Option(15.0, help="Largest tilt about each axis from the start pose."),
    shift_m: float = typer.Option(0.03, help="Largest shift along each axis from the start pose."),
    squares: str = typer.Option("7x5", help="ChArUco squares, across x down."),
    square_m: float = typer.Option(0.04, help="Printed square size (m)."),
    marker_m: float = typer.Option(0.03, help="Printed marker size (m)."),
    seed: int = typer.Option(0, help="Seed of the pose sequence."),
) -> None:
    """Calibrate one camera of a rig and write `intrinsics` and `pose` into the rig file."""
    path = resolve_rig_path(rig)
    config = load_rig(path)
    if isinstance(config.arm, TwinArm):
        raise typer.BadParameter(f"rig '{config.name}': calibration needs a hardware arm, not the twin", param_hint="--rig")
    if not re.fullmatch(r"[1-9][0-9]*x[1-9][0-9]*", squares.lower()):
        raise typer.BadParameter(f"'{squares}': give the board's squares as ACROSSxDOWN, like 7x5", param_hint="--squares")
    found = [c for c in config.cameras if c.name == camera]
    if not found:
        raise typer.BadParameter(f"rig '{config.name}' has no camera '{camera}'")
    full = found[0].model_copy(update={"crop": None, "output_size": found[0].resolution})  # calibrate the raw capture
    mount = mount or (found[0].pose.mount if found[0].pose else "world")
    across, down = (int(n) for n in squares.lower().split("x"))
    spec = BoardSpec(squares_x=across, squares_y=down, square_m=square_m, marker_m=marker_m)
    rng = np.random.default_rng(seed)
    images, poses = [], []
    with make_arm(config) as arm, make_camera(full) as driver:
        start = arm.state().tcp_pose
        for index in range(views):
            position = clip_to_box(start[:3] + rng.uniform(-shift_m, shift_m, 3), config.arm.workspace)
            turn = Rotation.from_euler("xyz", rng.uniform(-tilt_deg, tilt_deg, 3), degrees=True)
            quat = (Rotation.from_quat(start[3:]) * turn).as_quat()
            _go(arm, position, quat, config.control_dt)
            images.append(driver.read(max_age_s=config.safety.staleness_s).image)
            poses.append(arm.state().tcp_pose)
            log.info("view %d/%d taken", index + 1, views)
        _go(arm, start[:3], start[3:], config.control_dt)
    intrinsics = calibrate_intrinsics(images, spec)
    log.info("intrinsics: fx %.1f fy %.1f cx %.1f cy %.1f, rms %.3f px", intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy, intrinsics.rms_px)
    seen = [(p, b) for p, b in ((p, board_in_camera(i, spec, intrinsics)) for p, i in zip(poses, images)) if b is not None]
    if len(seen) < 3:
        raise CalibrationError(f"the board's pose was found in {len(seen)} views; need at least 3 for the extrinsics")
    extrinsics = hand_eye([pose_matrix(p) for p, _ in seen], [b for _, b in seen], mount)
    pose = camera_pose(extrinsics, mount, intrinsics)
    write_to_rig(path, camera, intrinsics, pose)
    typer.echo(f"{path}: camera '{camera}' calibrated ({mount}): pos {list(pose.pos)}, quat {list(pose.quat)}, rms {intrinsics.rms_px:.3f} px")
