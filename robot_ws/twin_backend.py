"""The twin as hardware: one shared `TwinWorld` per process, seen through the same arm backend
and camera driver contracts as a real Franka or RealSense.

The world runs physics on its own thread, paced by the wall clock times `time_scale`; with a
scale other than 1 the graph runs on sim time (the twin publishes /clock) so every timer
and stamp in the graph follows the twin. Rendering happens on that same thread because a
GL context belongs to the thread that made it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np
from scipy.spatial.transform import Rotation

from tether import spaces
from tether.config import CameraConfig, RigConfig
from tether.robot_ws.interfaces import ArmBackend, ArmState, CameraDriver, DeviceError, Frame
from tether.sim2real.twin.sim import TwinSim
from tether.transforms import quat_xyzw_to_matrix

log = logging.getLogger(__name__)

PHYSICS_CHUNK_S = 0.01  # sim seconds integrated per loop iteration
STALL_S = 0.05  # wall seconds the physics may fall behind before it re-anchors instead of catching up
QUEUE_PERIODS = 2  # how far (control periods) a setpoint may wait behind the ramps before it
EPOCH = 1_700_000_000.0  # sim-time stamps start here so they read as plausible ROS times


class TwinWorld:
    """The twin of one process: simulation, lock, clock, latest camera frames."""

    def __init__(self, rig: RigConfig, task: str, *, seed: int = 0, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale {time_scale}: must be positive")
        self.rig = rig
        self.sim = TwinSim(rig, task)
        self.time_scale = time_scale
        self.lock = threading.RLock()
        self.episode_seed = seed
        self.frames: dict[str, Frame] = {}
        self.frame_count = 0
        self.new_frames = threading.Condition()  # notified after every render
        self.on_tick: list[Callable[[float], None]] = []  # called after each physics chunk with now()
        self._gripper = 0
        self._ramp_end = 0.0  # sim_clock() at which the arm's current ramp ends
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._frame_due = True
        self._clock_base = 0.0  # sim seconds of the episodes before this one
        self.reset_scene()
        self._anchor()

    @property
    def sim_time_mode(self) -> bool:
        return self.time_scale != 1.0

    def now(self) -> float:
        """Seconds on the graph's clock: wall time, or the twin's sim time on /clock."""
        return EPOCH + self.sim_clock() if self.sim_time_mode else time.time()

    def sim_clock(self) -> float:
        """Sim seconds since the world started. Unlike the simulation's own time it runs on across
        scene resets: it is the graph's /clock, and a clock that jumps back stalls every timer."""
        with self.lock:  # never read between a reset and its new base
            return self._clock_base + self.sim.time

    # --- episode ----------------------------------------------------------------------

    def reset_scene(self) -> None:
        """Home the arm and draw a new scene (the twin's version of a person resetting the table)."""
        with self.lock:
            before = self.sim_clock()
            self.sim.reset(np.random.default_rng(self.episode_seed))
            self._clock_base = before - self.sim.time
            self.episode_seed += 1
            self._frame_due = True  # rendered by the physics thread, which owns the GL context

    # --- the physics thread -----------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="twin-physics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        else:
            self.sim.close()

    def _run(self) -> None:
        frame_period = 1.0 / max(c.fps for c in self.sim.cameras) if self.sim.cameras else None
        next_frame = self.sim_clock()
        self._anchor()
        while not self._stop.is_set():
            target_sim = self._sim_anchor + (time.perf_counter() - self._wall_anchor) * self.time_scale
            ahead = self.sim_clock() + PHYSICS_CHUNK_S - target_sim
            if ahead > 0:
                time.sleep(ahead / self.time_scale)
                continue
            if -ahead > STALL_S * self.time_scale:  # a stall: start afresh rather than catch up in a burst
                self._anchor()
            with self.lock:
                if not self.sim.advance(PHYSICS_CHUNK_S):
                    log.error("twin physics diverged; scene reset")
                    self.reset_scene()
                clock = self.sim_clock()
                # Half a chunk of slack: sums of chunks and of frame periods differ in the last bits.
                if frame_period is not None and (clock >= next_frame - PHYSICS_CHUNK_S / 2 or self._frame_due):
                    self._render(clock)
                    self._frame_due = False
                    next_frame += frame_period
                    if next_frame < clock:  # fell behind: skip frames rather than spiral
                        next_frame = clock + frame_period
                now = self.now()
            for callback in self.on_tick:
                callback(now)
        with self.lock:
            self.sim.close()  # on this thread: the GL context belongs to it

    def _anchor(self) -> None:
        """Tie the sim clock to the wall clock from now on (the physics thread paces itself by it)."""
        self._wall_anchor, self._epoch_anchor, self._sim_anchor = time.perf_counter(), time.time(), self.sim_clock()

    def _exposure_stamp(self, clock: float) -> float:
        """The graph time at which the scene was as it is at sim `clock`: a camera's exposure time. On the
        wall clock it is where the paced physics placed that instant, so frames keep their camera's period
        however late the physics thread got to them (as a hardware-clocked camera's stamps do)."""
        if self.sim_time_mode:
            return EPOCH + clock
        return self._epoch_anchor + (clock - self._sim_anchor)

    def _render(self, clock: float) -> None:
        if not self.sim.cameras:
            return
        stamp = self._exposure_stamp(clock)
        images = self.sim.render()
        with self.new_frames:
            self.frame_count += 1
            for name, image in images.items():
                self.frames[name] = Frame(image=image, stamp=stamp, sequence=self.frame_count)
            self.new_frames.notify_all()

    # --- commands from the arm backend ------------------------------------------------

    def command(
        self, position: np.ndarray, quat_xyzw: np.ndarray | None, gripper: int | None = None, queued: bool = False
    ) -> None:
        """Ramp the arm to a TCP target over one control period of sim time. A `queued` target (the
        arm node's next setpoint) ramps from where the previous ramp has got to and ends one period
        after it would have (queued by at most `QUEUE_PERIODS`), so setpoints that reach a lagging physics
        thread close together are not compressed into a faster motion; a hold or home starts now."""
        with self.lock:
            if gripper is not None:
                self._gripper = gripper
            clock, ramp = self.sim_clock(), self.rig.control_dt
            if queued:
                # A setpoint that finds the ramp over starts one with a physics chunk of slack, so that the next
                # one, which reaches the physics thread up to a chunk late, continues it instead of finding the
                # arm stopped for a chunk (those pauses made the arm overshoot the speed limit when it went on).
                waiting = self._ramp_end - clock
                ramp += min(waiting, QUEUE_PERIODS * self.rig.control_dt) if waiting > 0 else PHYSICS_CHUNK_S
            self._ramp_end = clock + ramp
            matrix = self.sim.home_tcp_mat if quat_xyzw is None else quat_xyzw_to_matrix(quat_xyzw)
            self.sim.command(position, matrix, self._gripper, ramp_s=ramp)
            self._gripper = 0


class TwinArm(ArmBackend):
    """The arm node's backend on the twin. It remembers the last target it sent, so a gripper
    command keeps the arm there; a hold or home replaces it, so nothing sends the arm back."""

    def __init__(self, world: TwinWorld) -> None:
        self.world = world
        self.rotation_actions = world.rig.arm.rotation_actions
        self._target: tuple[np.ndarray, np.ndarray | None] = (world.sim.tcp_pose()[0], None)

    def connect(self) -> None:
        """The twin is always there."""

    def close(self) -> None:
        """Nothing to release: the world belongs to the twin node."""

    def state(self) -> ArmState:
        with self.world.lock:
            sim = self.world.sim
            proprio = sim.proprio()
            return ArmState(
                stamp=self.world.now(),
                joint_positions=proprio[spaces.JOINTS],
                joint_velocities=sim.joint_velocities(),
                joint_efforts=sim.joint_efforts(),
                tcp_pose=proprio[spaces.TCP_POSE],
                tcp_twist=proprio[spaces.TCP_VEL],
                wrench=np.zeros(6),
                gripper=float(proprio[spaces.GRIPPER][0]),
            )

    def move_toward(self, position: np.ndarray, quat_xyzw: np.ndarray) -> None:
        quat = np.asarray(quat_xyzw, float) if self.rotation_actions else None
        self._send(np.asarray(position, float), quat, queued=True)

    def hold(self) -> None:
        with self.world.lock:
            position, matrix = self.world.sim.tcp_pose()
            self._send(position, Rotation.from_matrix(matrix).as_quat() if self.rotation_actions else None)

    def _send(
        self, position: np.ndarray, quat_xyzw: np.ndarray | None, gripper: int | None = None, queued: bool = False
    ) -> None:
        with self.world.lock:
            self._target = (position, quat_xyzw)
            self.world.command(position, quat_xyzw, gripper, queued)

    def set_gripper(self, command: int) -> None:
        self._send(*self._target, gripper=command)

    def home(self, abort: threading.Event | None = None) -> None:
        """The twin's home is a scene reset: a few ms under the world's lock, so it is over before an
        e-stop could interrupt it; one that came first stops it from starting."""
        with self.world.lock:
            if abort is not None and abort.is_set():
                raise DeviceError("twin: home interrupted by e-stop")
            self.world.reset_scene()
            self._target = (self.world.sim.tcp_pose()[0], None)


class TwinCamera(CameraDriver):
    """A twin camera: the newest frame the physics thread rendered."""

    def __init__(self, world: TwinWorld, camera: CameraConfig) -> None:
        if camera.backend != "twin":
            raise DeviceError(f"camera '{camera.name}': backend '{camera.backend}' is not a twin camera")
        self.world = world
        self.name = camera.name
        self._delivered: deque[float] = deque(maxlen=60)
        self._last_sequence = 0
        self._dropped = 0

    def connect(self) -> None:
        """Frames come from the world's thread."""

    def close(self) -> None:
        """Nothing to release."""

    def read(self, max_age_s: float) -> Frame:
        frame = self.world.frames.get(self.name)
        if frame is None or self.world.now() - frame.stamp > max_age_s:
            raise DeviceError(f"twin camera '{self.name}': no frame newer than {max_age_s:.3f} s")
        return self._deliver(frame)

    def wait_newer(self, sequence: int, timeout_s: float) -> Frame | None:
        with self.world.new_frames:
            newer = lambda: self.name in self.world.frames and self.world.frames[self.name].sequence != sequence  # noqa: E731
            if not self.world.new_frames.wait_for(newer, timeout_s):
                return None
            frame = self.world.frames[self.name]
        return self._deliver(frame)

    def _deliver(self, frame: Frame) -> Frame:
        """Count a frame handed out for the first time (fps, sequence gaps)."""
        if frame.sequence != self._last_sequence:
            if self._last_sequence:
                self._dropped += max(0, frame.sequence - self._last_sequence - 1)
            self._last_sequence = frame.sequence
            self._delivered.append(frame.stamp)
        return frame

    @property
    def measured_fps(self) -> float:
        if len(self._delivered) < 2 or self._delivered[-1] == self._delivered[0]:
            return 0.0
        return (len(self._delivered) - 1) / (self._delivered[-1] - self._delivered[0])

    @property
    def dropped_frames(self) -> int:
        return self._dropped


class TcpTrace:
    """The twin's TCP position after every physics chunk, on the simulation's clock (a physical
    clock: the physics thread's lag behind the wall clock does not show as speed): the arm's
    measured motion, for judging speed limits (tests, benchmarks/safety.py)."""

    def __init__(self, world: TwinWorld) -> None:
        self.world = world
        self.samples: list[tuple[float, np.ndarray]] = []
        world.on_tick.append(self._record)

    def _record(self, now: float) -> None:
        with self.world.lock:
            self.samples.append((self.world.sim_clock(), self.world.sim.tcp_pose()[0]))

    def clock(self) -> float:
        """Now, on the clock of the samples."""
        return self.world.sim_clock()

    def close(self) -> None:
        if self._record in self.world.on_tick:
            self.world.on_tick.remove(self._record)

    def since(self, start: float) -> list[tuple[float, np.ndarray]]:
        return [(t, p) for t, p in list(self.samples) if t >= start]

    def max_speed(self, window_s: float, start: float = -np.inf, end: float = np.inf) -> float:
        """The largest mean speed (m/s) over any `window_s` between `start` and `end` (see `clock`)."""
        samples = [(t, p) for t, p in list(self.samples) if start <= t <= end]
        best, j = 0.0, 0
        for t, p in samples:
            while j < len(samples) and samples[j][0] - t < window_s:
                j += 1
            if j == len(samples):
                break
            best = max(best, float(np.linalg.norm(samples[j][1] - p)) / (samples[j][0] - t))
        return best
