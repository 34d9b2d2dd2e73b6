"""A Franka Panda / FR3 through franky (libfranka), the arm backend for `arm.backend: franka`.

Motion: one Cartesian impedance tracking controller runs in franky's 1 kHz thread; each control
tick only swaps its reference (`move_toward`), so the arm node's loop never waits on the robot.
Stiffness comes from the rig. A reflex or a lost connection ends that controller; the next
`move_toward` raises `DeviceError` once (the arm node marks the episode failed and calls
`recover`), and `recover` clears the error, reconnecting first if the robot went away.

Gripper: commands go to a worker thread that issues franky's asynchronous grasp / move and polls
the finger width, so neither a toggle (0.5 to 1 s on the real hand) nor a dead gripper connection
ever blocks the control loop.
"""

from __future__ import annotations

import logging
import threading
import time

import franky
import numpy as np

from tether.config import FrankaArm
from tether.robot_ws.clock import DeviceClock
from tether.robot_ws.interfaces import ArmBackend, ArmState, DeviceError

log = logging.getLogger(__name__)

STALE_S = 0.5  # robot time that stops advancing for this long means the robot stopped reporting
RECOVER_ATTEMPTS = 3
RECOVER_PAUSE_S = 0.5
GRIPPER_POLL_S = 0.05
HOME_SETTLE_S = 3.0
HOME_POLL_S = 0.02  # how often a home looks at its abort event (an e-stop's added delay)
HOME_STOP_S = 5.0
HOME_TOLERANCE_RAD = 0.02
"""How close to the home joints a home must end. The controller that holds the arm once the joint motion ends stops
short of it by unmodelled joint friction and payload (franky-sim with 1 kg on the hand and twice the friction:
10 mrad, the shoulder's share a centimetre at the TCP); a policy starts from the measured state, not from home."""
PAYLOAD_INERTIA = (1e-3, 0, 0, 0, 1e-3, 0, 0, 0, 1e-3)  # a small tool: only its mass matters much
STALE_MOTION_ERRORS = (franky.InvalidMotionTypeException, franky.MotionReuseException)
"""Raised by franky (outside franky.Exception) when it still holds a motion this backend no longer tracks,
e.g. one ended by a reflex; only a fresh connection clears that."""


class _GripperWorker:
    """Runs the Franka Hand on its own thread: it drives the hand towards the latest wanted state
    and polls the finger width in between. The hand runs one command at a time, so a new wish
    waits for the running grasp / move to end (well under a second)."""

    def __init__(self, host: str, speed: float, force: float) -> None:
        self.host, self.speed, self.force = host, speed, force
        self._lock = threading.Lock()
        self._wanted = 0  # +1 closed, -1 open, 0 no wish yet
        self._issued = 0
        self._opening = 1.0
        self.error: str | None = None
        self._gripper: franky.Gripper | None = None
        self._future: franky.BoolFuture | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self._gripper = franky.Gripper(self.host)
            self._opening = self._gripper.width / self._gripper.max_width
        except franky.Exception as error:
            raise DeviceError(f"franka gripper {self.host}: {error}") from None
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="franka-gripper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._drop_connection()

    def _drop_connection(self) -> None:
        """Forget the hand's connection. The future goes first: freeing a franky Gripper while a
        future of it is alive crashes the process (seen with franky 2.0)."""
        self._future = None
        self._gripper = None

    def command(self, command: int) -> None:
        with self._lock:
            self._wanted = command

    @property
    def opening(self) -> float:
        with self._lock:
            return self._opening

    def _run(self) -> None:
        while not self._stop.wait(GRIPPER_POLL_S):
            with self._lock:
                wanted = self._wanted
            try:
                if self._gripper is None:
                    self._gripper = franky.Gripper(self.host)
                    self._issued, self._future = 0, None  # a new connection knows nothing of what was asked before
                busy = self._future is not None and not self._future.wait(0)
                if wanted and wanted != self._issued and not busy:
                    if wanted > 0:  # wide epsilons: the grasp succeeds with or without an object
                        self._future = self._gripper.grasp_async(0.0, self.speed, self.force, 0.1, 0.1)
                    else:
                        self._future = self._gripper.move_async(self._gripper.max_width, self.speed)
                    self._issued = wanted
                opening = float(np.clip(self._gripper.width / self._gripper.max_width, 0.0, 1.0))
                with self._lock:
                    self._opening = opening
                self.error = None
            except franky.Exception as error:
                if self.error is None:
                    log.warning("franka gripper %s: %s", self.host, error)
                self.error = str(error)
                self._drop_connection()  # and reconnect on the next round
                self._stop.wait(RECOVER_PAUSE_S)


class FrankaBackend(ArmBackend):
    """The Franka arm through franky; see the module docstring for how motion and gripper run."""

    def __init__(self, config: FrankaArm) -> None:
        self.config = config
        self.host = config.host
        self._robot: franky.Robot | None = None
        self._motion: franky.CartesianImpedanceTrackingMotion | None = None
        self._gripper = _GripperWorker(config.host, config.gripper_speed, config.grasp_force)
        self._clock = DeviceClock(drift=config.clock_drift)  # robot time onto the monotonic clock
        self._last_robot_time: tuple[float, float] | None = None  # (robot time, monotonic time it last changed)

    def _error(self, what: str, error: Exception | str) -> DeviceError:
        return DeviceError(f"franka {self.host}: {what}: {error}")

    # --- connection ---------------------------------------------------------------------

    def connect(self) -> None:
        self._connect_robot()
        self._gripper.start()

    def _connect_robot(self) -> None:
        realtime = franky.RealtimeConfig.Enforce if self.config.realtime else franky.RealtimeConfig.Ignore
        try:
            robot = franky.Robot(self.host, realtime_config=realtime)
            robot.relative_dynamics_factor = self.config.relative_dynamics_factor
            robot.set_load(self.config.payload_kg, list(self.config.payload_com), list(PAYLOAD_INERTIA))
            robot.recover_from_errors()
        except franky.Exception as error:
            raise self._error("cannot connect", error) from None
        self._robot = robot
        self._motion = None
        self._clock = DeviceClock(drift=self.config.clock_drift)
        self._last_robot_time = None

    def close(self) -> None:
        self._gripper.stop()
        if self._robot is not None:
            self._stop_motion()
            self._robot = None

    def _require(self) -> franky.Robot:
        if self._robot is None:
            raise DeviceError(f"franka {self.host}: not connected")
        return self._robot

    # --- state ----------------------------------------------------------------------------

    def state(self) -> ArmState:
        robot = self._require()
        try:
            raw = robot.state
            cartesian = robot.current_cartesian_state
        except franky.Exception as error:
            raise self._error("stopped reporting", error) from None
        # Timing on the monotonic clock: a wall-clock jump (NTP, a user) must neither stall nor trip the
        # staleness check nor the clock offset; the stamp moves to the wall clock only at the end.
        now = time.monotonic()
        robot_time = raw.time.to_sec()
        if self._last_robot_time is None or robot_time != self._last_robot_time[0]:
            self._last_robot_time = (robot_time, now)
        elif now - self._last_robot_time[1] > STALE_S:
            raise self._error("stopped reporting", f"no new state for {now - self._last_robot_time[1]:.2f} s")
        pose = cartesian.pose.end_effector_pose
        twist = cartesian.velocity.end_effector_twist
        return ArmState(
            stamp=self._clock.to_wall(robot_time, now) + (time.time() - time.monotonic()),
            joint_positions=np.asarray(raw.q, dtype=np.float64),
            joint_velocities=np.asarray(raw.dq, dtype=np.float64),
            joint_efforts=np.asarray(raw.tau_J, dtype=np.float64),
            tcp_pose=np.concatenate([pose.translation, pose.quaternion]),  # franky's quaternion is xyzw
            tcp_twist=np.concatenate([twist.linear, twist.angular]),
            wrench=np.asarray(raw.O_F_ext_hat_K, dtype=np.float64),
            gripper=self._gripper.opening,
        )

    # --- motion ----------------------------------------------------------------------------

    def move_toward(self, position: np.ndarray, quat_xyzw: np.ndarray) -> None:
        self._reference(franky.Affine(np.asarray(position, float), np.asarray(quat_xyzw, float)))

    def hold(self) -> None:
        robot = self._require()
        if self._motion is None:
            return  # no controller running: the robot already stands still
        try:
            here = robot.current_pose.end_effector_pose
        except franky.Exception as error:
            raise self._error("cannot hold", error) from None
        self._reference(here)

    def _reference(self, target: franky.Affine) -> None:
        """Hand the target to the running impedance controller, starting one if none runs."""
        robot = self._require()
        if self._motion is not None and not robot.is_in_control:
            self._motion = None
            raise self._error("motion stopped", self._motion_error(robot))
        try:
            if self._motion is None:
                motion = franky.CartesianImpedanceTrackingMotion(
                    translational_stiffness=self.config.impedance.translational_stiffness,
                    rotational_stiffness=self.config.impedance.rotational_stiffness,
                )
                motion.set_reference(franky.CartesianReference(target=robot.current_pose.end_effector_pose))
                robot.move(motion, asynchronous=True)
                self._motion = motion
            self._motion.set_reference(franky.CartesianReference(target=target))
        except franky.Exception as error:
            self._motion = None
            raise self._error("cannot move", error) from None
        except STALE_MOTION_ERRORS as error:
            self._motion, self._robot = None, None  # recover() reconnects
            raise self._error("cannot move", error) from None

    @staticmethod
    def _motion_error(robot: franky.Robot) -> str:
        try:
            robot.join_motion(0.0)
        except franky.Exception as error:
            return str(error)
        return "controller ended"

    def _stop_motion(self) -> None:
        """End the impedance controller (needed before a joint motion; the control type may not change mid-motion)."""
        robot = self._require()
        if self._motion is None:
            return
        self._motion = None
        try:
            robot.stop()
            robot.join_motion(5.0)
        except franky.Exception as error:
            if "preempted" not in str(error):  # stopping a motion reports it as preempted
                log.warning("franka %s: while stopping: %s", self.host, error)

    def set_gripper(self, command: int) -> None:
        if command not in (-1, 0, 1):
            raise ValueError(f"gripper command must be -1, 0 or +1, got {command}")
        if command:
            self._gripper.command(command)

    def home(self, abort: threading.Event | None = None) -> None:
        robot = self._require()
        self._stop_motion()
        home = np.asarray(self.config.home_joints)
        abort = abort if abort is not None else threading.Event()
        try:
            robot.move(franky.JointMotion(list(home)), asynchronous=True)
            while not robot.join_motion(HOME_POLL_S):
                if abort.is_set():
                    robot.stop()
                    robot.join_motion(HOME_STOP_S)
            # The trajectory ends before the joints do; return only once the arm is there.
            deadline = time.monotonic() + HOME_SETTLE_S
            while np.abs(robot.state.q - home).max() > HOME_TOLERANCE_RAD and time.monotonic() < deadline:
                if abort.wait(HOME_POLL_S):
                    break
        except franky.Exception as error:
            if not abort.is_set():
                raise self._error("homing failed", error) from None
        if abort.is_set():
            raise self._error("homing interrupted", "e-stop")
        error = np.abs(robot.state.q - home).max()
        if error > HOME_TOLERANCE_RAD:
            raise self._error("homing failed", f"stopped {error:.3f} rad from the home joints")

    def recover(self) -> None:
        """Clear a reflex (automatic error recovery), reconnecting first if the robot went away."""
        last: Exception | None = None
        for attempt in range(RECOVER_ATTEMPTS):
            try:
                if self._robot is None:
                    self._connect_robot()
                self._motion = None
                if self._require().recover_from_errors():
                    log.info("franka %s: recovered (attempt %d)", self.host, attempt + 1)
                    return
                last = RuntimeError("libfranka's automatic error recovery did not succeed")
            except franky.NetworkException as error:
                last = error
                self._robot = None  # the connection is gone: build a new one on the next attempt
            except (franky.Exception, DeviceError) as error:
                last = error
            time.sleep(RECOVER_PAUSE_S)
        raise self._error(f"recovery failed after {RECOVER_ATTEMPTS} attempts", last)
