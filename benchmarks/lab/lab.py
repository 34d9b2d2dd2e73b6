"""`Lab`: franky-sim with a table, a marked cube and two RealSense cameras, as tether sees a `franka_realsense` rig.

Two processes. The server (benchmarks/lab/server.py) owns physics and the libfranka-protocol endpoint.
This process owns the shared world-state block, the renders and the software RealSense devices (a
software device exists only in the process that made it), the ground truth and the cube placements;
the graph that drives the arm (tether's Franka backend, talking to the server over loopback) and opens
the cameras (tether's RealSense driver, through the `SOFTWARE_DEVICES` registry) must run in this
process too for a policy that sees images.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

import mujoco
import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from benchmarks.lab.cameras import CameraRender, focal_px
from benchmarks.lab.gaps import Gaps
from benchmarks.lab.scene import (
    CAPTURE_SIZE,
    CUBE_HALF,
    CUBE_JOINT,
    HAND_BODY,
    MARKER_DICTIONARY,
    MARKER_SIZE_M,
    TOP_MARKER,
    RenderCamera,
)
from benchmarks.lab.server import READY, ServerSettings
from benchmarks.lab.shared import WorldState
from tether.config import CameraConfig, CameraIntrinsics, MarkerConfig, MirrorConfig, RigConfig, load_rig, parse_rig
from tether.robot_ws.franky_server import free_loopback_address, sim_rig
from tether.robot_ws.realsense_software import SoftwareRealSense
from tether.sim2real.twin.tasks import PickCube
from tether.transforms import lookat_quat_xyzw, wxyz_to_xyzw, xyzw_to_wxyz

REPO = Path(__file__).resolve().parents[2]
CROP = (80, 0, 560, 480)
"""Both cameras crop the 640x480 capture to the centre square, so their 128 px images frame what the twin's
square cameras (twin_panda) frame."""
FAST_RENDER = {"shadowsize": 0, "offsamples": 0}
"""Render settings of the lab's cameras: franky-sim's 4096 px shadow map and 8x multisampling cost 0.3 s a frame
under software OpenGL (llvmpipe, 2 cores), shadows off and no multisampling 26 ms (front) and 46 ms (wrist);
lights, materials and colours stay franky-sim's. `Lab(shadows=True)` keeps its settings (for a GPU)."""
PERCEPTION_CAMERA, PERCEPTION_SIZE = "front", (480, 480)
"""The camera a state policy's cube pose comes from, and its image size: the 4 cm top marker is ~30 px across
there (at the pixel policies' 128 px it is 8 px, too few to read)."""
LAB_CLOCK_DRIFT = 0.5
START_TIMEOUT_S = 60.0


def render_camera(camera: CameraConfig, gaps: Gaps, rng: np.random.Generator) -> RenderCamera:
    """Where the lab renders a rig camera: its calibrated pose, off by the extrinsics gap in a random direction."""
    pose = camera.pose
    assert pose is not None and pose.lookat is not None
    up = np.array([0.0, 0.0, 1.0]) if pose.mount == "world" else np.array([-1.0, 0.0, 0.0])  # as the twin
    nominal = Rotation.from_quat(lookat_quat_xyzw(np.array(pose.pos), np.array(pose.lookat), up))
    direction, axis = rng.normal(size=3), rng.normal(size=3)
    pos = np.array(pose.pos) + gaps.extrinsics_m * direction / np.linalg.norm(direction)
    turn = Rotation.from_rotvec(np.radians(gaps.extrinsics_deg) * axis / np.linalg.norm(axis))
    quat = xyzw_to_wxyz((turn * nominal).as_quat())
    return RenderCamera(camera.name, pose.mount, tuple(pos), tuple(float(q) for q in quat), pose.fovy_deg)


def lab_cameras(fps: int, serial_prefix: str) -> list[CameraConfig]:
    """The rig's cameras, placed as the twin places them (twin_panda), captured 640x480 with matching intrinsics."""
    width, height = CAPTURE_SIZE
    cameras = []
    for index, twin in enumerate(load_rig("twin_panda").cameras):
        focal = focal_px(height, twin.pose.fovy_deg)
        intrinsics = CameraIntrinsics(size=CAPTURE_SIZE, fx=focal, fy=focal, cx=(width - 1) / 2, cy=(height - 1) / 2)
        cameras.append(CameraConfig(
            name=twin.name, backend="realsense", device=f"{serial_prefix}{index}", resolution=CAPTURE_SIZE, fps=fps,
            crop=CROP, output_size=(128, 128), pose=twin.pose, intrinsics=intrinsics,
        ))
    return cameras


class Lab:
    """The lab as a context manager: server started, cameras streaming, ground truth readable."""

    def __init__(
        self, gaps: Gaps | None = None, *, task: str = "pick_cube", fps: int = 15, seed: int = 0,
        cameras: bool = True, perception: bool = False, shadows: bool = False, folder: Path | None = None,
    ) -> None:
        """`perception`: the rig is one for a state policy on a rig with no privileged state: its front camera alone,
        at PERCEPTION_SIZE, and the mirror placing the cube from the top marker (tether's cube-pose estimator)."""
        self.gaps = gaps or Gaps()
        self.perception = perception
        self.task, self.fps, self.seed, self.with_cameras, self.shadows = task, fps, seed, cameras, shadows
        self._tmp = None if folder is not None else tempfile.TemporaryDirectory(prefix="tether-lab-")
        self.folder = Path(folder if folder is not None else self._tmp.name)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.address = free_loopback_address()
        self.camera_configs = lab_cameras(fps, serial_prefix=f"lab{self.address.replace('.', '')}")
        if perception:
            self.camera_configs = [c.model_copy(update={"output_size": PERCEPTION_SIZE})
                                   for c in self.camera_configs if c.name == PERCEPTION_CAMERA]
        rng = np.random.default_rng(seed)
        self.render_cameras = [render_camera(c, self.gaps, rng) for c in self.camera_configs]
        self.world: WorldState | None = None
        self.process: subprocess.Popen | None = None
        self.model: mujoco.MjModel | None = None
        self.renders: dict[str, CameraRender] = {}
        self.devices: list[SoftwareRealSense] = []
        self.rig_path = self.folder / "lab_rig.yaml"
        self._log: list[str] = []

    # lifecycle
    def __enter__(self) -> Lab:
        try:
            self._start_server()
            self.model = mujoco.MjModel.from_binary_path(str(self.settings.model_path))
            if not self.shadows:
                for key, value in FAST_RENDER.items():
                    setattr(self.model.vis.quality, key, value)
            self._cube_qadr = self.model.jnt_qposadr[self.model.joint(CUBE_JOINT).id]
            if self.with_cameras:
                self._start_cameras()
            self.rig_path.write_text(yaml.safe_dump(self.rig.model_dump(mode="json", exclude_none=True), sort_keys=False))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for device in self.devices:
            device.__exit__()
        self.devices = []
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.world is not None:
            self.world.close()
            self.world = None
        if self._tmp is not None:
            self._tmp.cleanup()

    def _start_server(self) -> None:
        self.world = WorldState.create()
        self.settings = ServerSettings(
            address=self.address, shared_memory=self.world.name, folder=str(self.folder),
            gaps=self.gaps.model_dump(mode="json"), cameras=[asdict(c) for c in self.render_cameras],
        )
        settings_path = self.settings.write(self.folder / "server.json")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.lab.server", str(settings_path)], cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        ready = threading.Event()

        def watch() -> None:
            for line in self.process.stdout:
                self._log.append(line)
                if READY in line:
                    ready.set()

        threading.Thread(target=watch, name="lab-server-log", daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the lab server did not start:\n" + "".join(self._log[-30:]))

    def _start_cameras(self) -> None:
        for config in self.camera_configs:
            render = CameraRender(self.model, self.world, config.name, CAPTURE_SIZE)
            self.renders[config.name] = render
            device = SoftwareRealSense(
                str(config.device), CAPTURE_SIZE, self.fps, image=render, fx=config.intrinsics.fx, register=True
            )
            render.wanted = lambda device=device: device.streaming
            self.devices.append(device.__enter__())

    @property
    def rig(self) -> RigConfig:
        """franka_realsense pointed at this lab (named franka_lab): the server's address, the lab's cameras and task."""
        base = sim_rig(self.address)
        data = base.model_dump(mode="json")
        data["cameras"] = [c.model_dump(mode="json") for c in self.camera_configs] if self.with_cameras else []
        data["name"], data["task"] = "franka_lab", {**data["task"], "name": self.task}
        # A graph of its own: two labs on one host (two benchmark runs at once) would otherwise share every topic,
        # and each recorder would store the other's transitions too.
        data["namespace"] = "/tether/lab_" + self.address.replace(".", "_")
        # franky-sim with the lab's renders beside it runs at 0.6-0.8x real time on 2 busy cores: the robot's clock
        # falls up to 0.4 s/s behind, and its states would all count as stale at sim_rig's 0.3.
        data["arm"]["clock_drift"] = LAB_CLOCK_DRIFT
        if self.perception:
            marker = MarkerConfig(id=TOP_MARKER, body="cube", size_m=MARKER_SIZE_M, offset=(0.0, 0.0, CUBE_HALF))
            data["mirror"] = MirrorConfig(dictionary=MARKER_DICTIONARY, detect_camera=PERCEPTION_CAMERA,
                                          markers=[marker]).model_dump(mode="json")
        return parse_rig(data, f"lab rig at {self.address}")

    # ground truth and the person who resets the cube
    def cube_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The cube's true position (m) and orientation (xyzw) in the robot base frame."""
        qpos = self.world.read().qpos
        return qpos[self._cube_qadr : self._cube_qadr + 3].copy(), wxyz_to_xyzw(qpos[self._cube_qadr + 3 : self._cube_qadr + 7])

    def hand_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The hand body's true position and orientation (xyzw), from the published qpos."""
        data = mujoco.MjData(self.model)
        data.qpos[:] = self.world.read().qpos[: self.model.nq]
        mujoco.mj_kinematics(self.model, data)
        body = self.model.body(HAND_BODY).id
        return data.xpos[body].copy(), wxyz_to_xyzw(data.xquat[body])

    def lifted(self) -> bool:
        """pick_cube's success, as the twin judges it: the cube's bottom 10 cm above the table."""
        return bool(self.cube_pose()[0][2] - CUBE_HALF >= PickCube.lift_height)

    def place_cube(self, x: float, y: float, yaw: float) -> None:
        self.world.request_place(x, y, yaw)

    # figures
    def real_time_factor(self, seconds: float = 2.0) -> float:
        """Simulated over wall time across the next `seconds` (franky-sim paces itself to at most 1.0)."""
        first = self.world.read()
        time.sleep(seconds)
        last = self.world.read()
        return (last.sim_time - first.sim_time) / (last.wall_time - first.wall_time)
