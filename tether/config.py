"""Rig configuration: one YAML per rig, validated into typed models.

A rig names everything that differs between set-ups: the arm backend and its
limits, the cameras, the teleop device, the task and the safety bounds. The
twin and the real robot read the same models, so switching a rig from twin to
hardware is a change of YAML and nothing else.

Every error, whatever its kind (missing file, bad YAML, unknown key, wrong
type, value out of range or not finite), is one `ConfigError` line naming the
file, the key path and the reason. A rig file is small and plain: files over
`MAX_RIG_BYTES` and YAML aliases (the way to an "alias bomb") are refused
before anything is built from them.
"""

from __future__ import annotations

import importlib.resources
import math
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tether.errors import BadInput

DEFAULT_RIG = "twin_panda"
MAX_RIG_BYTES = 1 << 20
"""A rig is a page of YAML; anything over 1 MiB is not one."""

Vec3 = tuple[float, float, float]


class ConfigError(BadInput):
    """A rig file that cannot be used; the message is one line naming file, key and reason."""


class _Strict(BaseModel):
    """Base of every config model: unknown keys are errors, floats are finite, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Range(_Strict):
    """A closed interval [low, high] to sample from uniformly."""

    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"bounds must be finite, got [{self.low}, {self.high}]")
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return {"low": value[0], "high": value[1]}
        return value


class Box(_Strict):
    """An axis-aligned box in the robot base frame, in metres."""

    low: Vec3
    high: Vec3

    @model_validator(mode="after")
    def _ordered(self) -> Box:
        for axis, lo, hi in zip("xyz", self.low, self.high):
            if not lo < hi:
                raise ValueError(f"{axis}: low {lo} must be below high {hi}")
        return self


# --- arm -------------------------------------------------------------------------------

PANDA_HOME = (0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785)
# Joint position limits (rad) from Franka's FCI documentation ("Robot and interface specifications").
PANDA_JOINT_LIMITS = (
    (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973),
    (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973),
)
FR3_JOINT_LIMITS = (
    (-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159),
    (2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159),
)
HOME_LIMITS = (
    tuple(map(max, PANDA_JOINT_LIMITS[0], FR3_JOINT_LIMITS[0])),
    tuple(map(min, PANDA_JOINT_LIMITS[1], FR3_JOINT_LIMITS[1])),
)
"""A home pose must lie inside the limits of both arms, so one rig file fits a Panda and an FR3."""
PANDA_CARTESIAN_SPEED = (1.7, 2.5)
"""Largest TCP speed of a Panda, m/s and rad/s: libfranka's kMaxTranslationalVelocity and
kMaxRotationalVelocity (include/franka/rate_limiting.h; the FR3 allows 3.0 m/s, the Panda is the bound)."""


class _ArmBase(_Strict):
    hardware_speed: ClassVar[tuple[float, float] | None] = None
    """(m/s, rad/s) the backend's hardware can do at most, when known; speed limits above it are errors."""

    home_joints: tuple[float, float, float, float, float, float, float] = PANDA_HOME
    """Joint angles (rad) the arm goes to on reset/home."""
    workspace: Box = Box(low=(0.3, -0.25, 0.0), high=(0.7, 0.25, 0.5))
    """Box the TCP target is clipped to (base frame, m)."""
    max_linear_speed: float = Field(0.25, gt=0, le=1.0)
    """Largest TCP speed (m/s) a command may ask for; faster targets are rate-limited."""
    max_angular_speed: float = Field(1.0, gt=0, le=3.0)
    """Largest TCP angular speed (rad/s)."""
    max_linear_accel: float = Field(1.0, gt=0, le=13.0)
    """Largest rate (m/s^2) at which the setpoint's speed may grow: a command from rest reaches full speed
    over a few control periods instead of at once, which made the arm's first period overshoot the speed
    limit by up to 20% on the twin (benchmarks/safety.py). Slowing down is never limited. The bound is
    libfranka's kMaxTranslationalAcceleration."""
    control_rate_hz: float = Field(10.0, gt=0, le=1000)
    """Policy / command rate."""
    frame_to_command_s: float = Field(0.022, ge=0, le=1.0)
    """A camera policy publishes each command this long after its frames were acquired, when it is ready
    sooner: commands then leave at the cameras' steady rhythm with one fixed latency, instead of carrying the
    varying render or capture, transport and inference times as period jitter (a fixed delay is also what the
    twin's `command_latency_steps` can model). 0 publishes as soon as ready. Wall-clock graphs only: under
    sim time a step publishes when ready. The default covers the p99 of frames-to-ready with two 128x128
    cameras and the frozen encoder on 2 CPU cores (benchmarks/README.md#control_loop); raise it for a slower
    policy or camera path, or the late commands come back as jitter."""
    action_scale: tuple[float, float] = (0.02, 0.1)
    """Metres and radians per unit action per control step: [translation, rotation]."""
    rotation_actions: bool = False
    """Whether actions carry a rotation vector [rx, ry, rz] after the translation."""
    tcp_down_quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    """Orientation (xyzw) the TCP holds when rotation actions are off: pointing down."""

    @field_validator("action_scale")
    @classmethod
    def _positive_scale(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(v > 0 for v in value):
            raise ValueError(f"must be positive, got {list(value)}")
        return value

    @field_validator("home_joints")
    @classmethod
    def _home_within_limits(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        for joint, (q, lo, hi) in enumerate(zip(value, *HOME_LIMITS), start=1):
            if not lo <= q <= hi:
                raise ValueError(f"joint {joint}: {q} is outside the Panda/FR3 limits [{lo}, {hi}]")
        return value

    @model_validator(mode="after")
    def _within_hardware_speed(self) -> _ArmBase:
        if self.hardware_speed is not None:
            linear, angular = self.hardware_speed
            if self.max_linear_speed > linear or self.max_angular_speed > angular:
                raise ValueError(
                    f"max_linear_speed {self.max_linear_speed} / max_angular_speed {self.max_angular_speed} exceed "
                    f"what a {self.backend} arm can do ({linear} m/s, {angular} rad/s)"
                )
        return self


class TwinArm(_ArmBase):
    """The MuJoCo digital twin stands in for the arm."""

    hardware_speed = PANDA_CARTESIAN_SPEED  # the twin models a Panda
    backend: Literal["twin"] = "twin"
    model: Path | None = None
    """A user's own MJCF robot instead of the built-in Panda (see docs/twin.md for the names it must define)."""
    physics_rate_hz: float = Field(500.0, ge=500, le=5000)
    """MuJoCo integration rate; the joint impedance controller runs at this rate."""
    joint_stiffness: float = Field(2000.0, gt=0, le=10000)
    """Joint impedance stiffness (N m / rad) of the shoulder joints; wrist joints use a third of it."""


class FrankaImpedance(_Strict):
    translational_stiffness: float = Field(2000.0, gt=0, le=5000)
    rotational_stiffness: float = Field(150.0, gt=0, le=500)


class FrankaArm(_ArmBase):
    """A Franka Panda / FR3 through franky (libfranka)."""

    hardware_speed = PANDA_CARTESIAN_SPEED
    backend: Literal["franka"] = "franka"
    host: str
    """Robot (or franky-sim) address."""
    realtime: bool = True
    """Require a realtime kernel (libfranka's default); off only for simulation servers."""
    clock_drift: float = Field(1e-4, ge=0, le=0.5)
    """How fast (s/s) the robot's clock may fall behind this host's before its states count as old. A real
    arm's crystal drifts ~1e-5; a simulation server that runs slower than real time needs its slowdown."""
    relative_dynamics_factor: float = Field(0.1, gt=0, le=1)
    impedance: FrankaImpedance = FrankaImpedance()
    """Stiffness of the Cartesian impedance controller that tracks each tick's TCP target."""
    payload_kg: float = Field(0.0, ge=0, le=3)
    """Mass held beyond the hand (a tool or fixture), so gravity compensation does not sag."""
    payload_com: Vec3 = (0.0, 0.0, 0.05)
    """Centre of mass of the payload in the flange frame (m)."""
    gripper_speed: float = Field(0.1, gt=0, le=0.2)
    """Finger speed (m/s) for opening and closing."""
    grasp_force: float = Field(20.0, gt=0, le=70)
    """Force (N) the closed gripper holds with."""


class ServoArm(_ArmBase):
    """An arm that already has a ROS 2 driver following MoveIt Servo style twists."""

    backend: Literal["servo"] = "servo"
    twist_topic: str = "/servo_node/delta_twist_cmds"
    frame_id: str = "base_link"
    pose_topic: str = "/tcp_pose"
    """`geometry_msgs/PoseStamped` of the TCP in `frame_id`, published by the arm's own driver."""
    joint_states_topic: str = "/joint_states"
    """`sensor_msgs/JointState` of the arm's own driver."""
    gripper_topic: str | None = None
    """`std_msgs/Float32` gripper command topic (-1 open, +1 close); None for an arm without one."""
    home_service: str | None = None
    """`std_srvs/Trigger` service of the arm's driver that moves it home; None if it has none."""
    gain: float = Field(4.0, gt=0, le=50)
    """Proportional gain (1/s) from pose error to the commanded twist; the twist is then speed-limited."""


ArmConfig = Annotated[TwinArm | FrankaArm | ServoArm, Field(discriminator="backend")]


# --- cameras ---------------------------------------------------------------------------


class CameraPose(_Strict):
    """Where a camera sits: in the world, or on the wrist (relative to the hand)."""

    mount: Literal["world", "wrist"] = "world"
    pos: Vec3
    lookat: Vec3 | None = None
    """Point the optical axis passes through (same frame as pos)."""
    quat: tuple[float, float, float, float] | None = None
    """Orientation xyzw of the camera frame (MuJoCo convention: looks along -z, y up)."""
    fovy_deg: float = Field(58.0, gt=5, lt=170)

    @model_validator(mode="after")
    def _one_orientation(self) -> CameraPose:
        if (self.lookat is None) == (self.quat is None):
            raise ValueError("give exactly one of lookat or quat")
        return self


class CameraIntrinsics(_Strict):
    """A calibrated pinhole camera with OpenCV's distortion model, at one capture size."""

    size: tuple[int, int]
    """(width, height) of the images it was calibrated at."""
    fx: float = Field(gt=0)
    fy: float = Field(gt=0)
    cx: float
    cy: float
    distortion: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    """OpenCV coefficients k1, k2, p1, p2[, k3, ...]."""
    rms_px: float | None = Field(None, ge=0)
    """Reprojection error of the calibration, for the record."""

    @property
    def fovy_deg(self) -> float:
        """Vertical field of view, what the twin's camera needs."""
        return math.degrees(2 * math.atan2(self.size[1] / 2, self.fy))


class CameraConfig(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    backend: Literal["twin", "realsense", "opencv"]
    device: str | int | None = None
    """RealSense serial, V4L2 index or path, or a video file."""
    resolution: tuple[int, int] = (640, 480)
    """Capture size (width, height) in pixels."""
    fps: float = Field(30.0, gt=0, le=120)
    crop: tuple[int, int, int, int] | None = None
    """Crop box (x0, y0, x1, y1) in capture pixels, applied before resizing."""
    output_size: tuple[int, int] = (128, 128)
    """Size (width, height) of the image the policy sees."""
    pose: CameraPose | None = None
    """Placement in the twin; for hardware, the calibrated extrinsics if known."""
    intrinsics: CameraIntrinsics | None = None
    """Calibrated pinhole model of the capture (`tether calibrate camera` writes it)."""
    exposure_us: float | None = Field(None, gt=0, le=200_000)
    """Fixed exposure time (microseconds); None keeps the camera's auto exposure."""
    white_balance_k: float | None = Field(None, ge=2000, le=10_000)
    """Fixed white balance (kelvin); None keeps auto white balance. Fixed values keep colours
    stable across an episode, which image policies need."""
    depth: bool = False
    """RealSense only: also stream depth, aligned to the colour image (Frame.depth, millimetres)."""

    @model_validator(mode="after")
    def _geometry(self) -> CameraConfig:
        w, h = self.resolution
        if w <= 0 or h <= 0 or min(self.output_size) <= 0:
            raise ValueError("sizes must be positive")
        if self.crop is not None:
            x0, y0, x1, y1 = self.crop
            if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
                raise ValueError(f"crop {list(self.crop)} must lie inside the {w}x{h} capture")
        if self.backend == "twin" and self.pose is None:
            raise ValueError("a twin camera needs a pose")
        if self.depth and self.backend != "realsense":
            raise ValueError(f"depth needs the realsense backend, not '{self.backend}'")
        if self.backend != "twin" and self.device is None:
            raise ValueError(f"a {self.backend} camera needs a device (serial, index, path or file)")
        if self.intrinsics is not None and tuple(self.intrinsics.size) != tuple(self.resolution):
            raise ValueError(f"intrinsics were calibrated at {list(self.intrinsics.size)}, not at the capture {[w, h]}")
        return self


# --- teleop ----------------------------------------------------------------------------

DEFAULT_KEYMAP = {
    "w": "+x", "s": "-x", "a": "+y", "d": "-y", "r": "+z", "f": "-z",
    "space": "gripper_toggle", "enter": "success", "backspace": "failure",
    "n": "reset", "b": "rerecord", "esc": "stop",
}  # fmt: skip


class ScriptedOperatorConfig(_Strict):
    """The closed-loop expert that stands in for the human in the twin."""

    noise_std: float = Field(0.1, ge=0, le=1)
    """Gaussian noise added to every action (in action units)."""
    hesitate_prob: float = Field(0.05, ge=0, le=1)
    """Chance per step of emitting a zero motion, as a person pausing."""
    overshoot: float = Field(0.15, ge=0, le=1)
    """Fraction by which approach moves are randomly overshot and corrected."""
    gain: float = Field(12.0, gt=0)
    """Proportional gain from position error (m) to action units."""


MOTION_AXES = ("x", "y", "z", "rx", "ry", "rz")
KEY_ACTIONS = frozenset(
    [s + a for a in MOTION_AXES for s in "+-"]
    + ["gripper_toggle", "gripper_open", "gripper_close", "engage", "success", "failure", "reset", "rerecord", "stop"]
)
SPACEMOUSE_AXES = ("x", "y", "z", "rx", "ry", "rz")


class TeleopConfig(_Strict):
    device: Literal["scripted", "keyboard", "spacemouse"] = "scripted"
    keymap: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_KEYMAP))
    """Key name (pynput: a character, or `space`, `enter`, `esc`, `up`, ...) -> action
    (`+x`..`-rz`, `gripper_toggle` / `_open` / `_close`, `engage`, or an episode event)."""
    spacemouse_axes: tuple[str, str, str, str, str, str] = ("+y", "+x", "-z", "+ry", "+rx", "-rz")
    """For each action axis [dx, dy, dz, rx, ry, rz], the signed SpaceMouse axis that drives it
    (HID frame: x right, y towards the user, z down). The default suits an operator facing the robot."""
    spacemouse_buttons: tuple[str, ...] = ("gripper_toggle", "engage")
    """Action of SpaceMouse button 0, 1, ... (same names as the keymap's non-motion actions)."""
    deadzone: float = Field(0.1, ge=0, lt=1)
    """SpaceMouse axis magnitude below which input counts as zero."""
    translation_scale: float = Field(1.0, gt=0)
    rotation_scale: float = Field(1.0, gt=0)
    sticky_s: float = Field(0.5, ge=0, le=5)
    """How long the human keeps control after letting go."""
    scripted: ScriptedOperatorConfig = ScriptedOperatorConfig()

    @field_validator("keymap")
    @classmethod
    def _known_key_actions(cls, value: dict[str, str]) -> dict[str, str]:
        for key, action in value.items():
            if action not in KEY_ACTIONS:
                raise ValueError(f"key '{key}': unknown action '{action}' (known: {', '.join(sorted(KEY_ACTIONS))})")
        return value

    @field_validator("spacemouse_axes")
    @classmethod
    def _signed_axes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if item[:1] not in "+-" or item[1:] not in SPACEMOUSE_AXES:
                raise ValueError(f"'{item}' is not a signed SpaceMouse axis like '+x' or '-rz'")
        return value

    @field_validator("spacemouse_buttons")
    @classmethod
    def _button_actions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for action in value:
            if action not in KEY_ACTIONS or action[0] in "+-":
                raise ValueError(f"unknown button action '{action}'")
        return value


# --- task ------------------------------------------------------------------------------


class TaskConfig(_Strict):
    name: Literal["pick_cube", "peg_insert", "reach"] = "pick_cube"
    episode_length: int = Field(100, ge=1, le=100_000)
    """Steps at the control rate before the episode is truncated."""
    reward: Literal["sparse", "dense", "classifier", "operator"] = "sparse"
    """Where reward comes from: the twin's success check, its dense shaping, a trained classifier or the operator's key."""
    classifier: Path | None = None
    """Reward-classifier checkpoint directory when reward is 'classifier'."""

    @model_validator(mode="after")
    def _classifier_path(self) -> TaskConfig:
        if self.reward == "classifier" and self.classifier is None:
            raise ValueError("reward 'classifier' needs a classifier path")
        return self


# --- safety ----------------------------------------------------------------------------


class SafetyConfig(_Strict):
    watchdog_s: float = Field(0.5, gt=0, le=10)
    """The arm holds when no command arrived for this long."""
    staleness_s: float = Field(0.2, gt=0, le=10)
    """Observations older than this are never fed to a policy."""


# --- randomisation ---------------------------------------------------------------------


class RandomizationConfig(_Strict):
    """Domain randomisation applied by the twin at every reset. Scales multiply nominal values."""

    enabled: bool = False
    friction_scale: Range = Range(low=1.0, high=1.0)
    mass_scale: Range = Range(low=1.0, high=1.0)
    damping_scale: Range = Range(low=1.0, high=1.0)
    actuator_gain_scale: Range = Range(low=1.0, high=1.0)
    object_xy: Range = Range(low=-0.08, high=0.08)
    """Offset (m) of the task object from its nominal place, per axis. Used even when disabled."""
    object_yaw: Range = Range(low=-0.6, high=0.6)
    """Yaw (rad) of the task object. Used even when disabled."""
    camera_pos_jitter: float = Field(0.0, ge=0, le=0.2)
    """Std (m) of camera position noise."""
    camera_fovy_jitter_deg: float = Field(0.0, ge=0, le=20)
    light_scale: Range = Range(low=1.0, high=1.0)
    color_jitter: float = Field(0.0, ge=0, le=1)
    """Largest change of each RGB channel of table and object colours."""
    action_latency_steps: tuple[int, int] = (0, 0)
    """Inclusive range of control steps an action waits before it is applied."""
    obs_noise_std: float = Field(0.0, ge=0, le=0.1)
    """Std of Gaussian noise added to state observations."""
    object_pos_noise_std: float = Field(0.0, ge=0, le=0.05)
    """Std (m) of the error of an object position a real rig estimates from its cameras (the task's perceived
    keys, e.g. a marker's pose), so a state policy trains on what it will be given rather than the twin's truth."""
    object_dropout: float = Field(0.0, ge=0, le=0.9)
    """Chance per control step that the perceived object pose is not re-measured and its last value repeats
    (the marker out of view: occluded by the hand, blurred, too far), as the live twin holds an unseen object."""

    @field_validator("action_latency_steps")
    @classmethod
    def _latency(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= value[0] <= value[1] <= 10:
            raise ValueError(f"need 0 <= low <= high <= 10, got {list(value)}")
        return value


# --- live twin (mirror) ---------------------------------------------------------------


class MarkerConfig(_Strict):
    """An ArUco marker fixed to a twin body, so the mirror can place that body where a camera sees it."""

    id: int = Field(ge=0)
    body: str = Field(min_length=1)
    """Twin body (MJCF name) that carries the marker, e.g. the task's `cube`."""
    size_m: float = Field(gt=0, le=1)
    """Side of the marker's black square (m), as printed."""
    offset: Vec3 = (0.0, 0.0, 0.0)
    """Marker centre in the body frame (m); the marker's axes are the body's (x, y in its plane, z out)."""


class MirrorConfig(_Strict):
    """The live twin that follows a real arm and places objects from marker detections."""

    namespace: str = Field("mirror", pattern=r"^[a-z][a-z0-9_]*$")
    """Sub-namespace of the mirror's topics (its cameras publish on `<namespace>/cameras/<name>/...`)."""
    dictionary: str = "DICT_4X4_50"
    """OpenCV ArUco (or AprilTag, `DICT_APRILTAG_36h11`) dictionary of the markers."""
    detect_camera: str | None = None
    """Rig camera whose images are searched for markers; None places nothing."""
    markers: list[MarkerConfig] = Field(default_factory=list)

    @field_validator("dictionary")
    @classmethod
    def _known_dictionary(cls, value: str) -> str:
        if not value.startswith("DICT_"):
            raise ValueError(f"'{value}' is not an OpenCV ArUco dictionary name like DICT_4X4_50")
        return value

    @field_validator("markers")
    @classmethod
    def _unique_ids(cls, value: list[MarkerConfig]) -> list[MarkerConfig]:
        ids = [m.id for m in value]
        if len(set(ids)) != len(ids):
            raise ValueError(f"marker ids must be unique, got {ids}")
        return value


# --- twin scene ------------------------------------------------------------------------


class TwinScene(_Strict):
    """How the twin's table and light look: set them to match the real cell, so that a pixel policy trained in
    the twin sees the table it will meet (benchmarks/pixel_generalisation.py measures what a changed look costs)."""

    table_rgba: tuple[float, float, float, float] = (0.78, 0.74, 0.68, 1.0)
    light_diffuse: float = Field(0.6, ge=0, le=1)
    """Diffuse intensity of the overhead light (each RGB channel)."""

    @field_validator("table_rgba")
    @classmethod
    def _unit(cls, value: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        if not all(0.0 <= v <= 1.0 for v in value):
            raise ValueError(f"each channel must lie in [0, 1], got {list(value)}")
        return value


# --- twin dynamics ---------------------------------------------------------------------


class TwinDynamics(_Strict):
    """Dynamics of the twin's arm that system identification fits (`tether sim sysid` writes them).

    Joint values apply to every arm joint; None keeps the robot model's own value (the built-in
    Panda: damping 2, armature 0.1, no friction), so a rig without this section runs as before.
    """

    joint_damping: float | None = Field(None, ge=0, le=200)
    """Viscous damping (N m s / rad) of each arm joint."""
    joint_armature: float | None = Field(None, ge=0, le=10)
    """Reflected rotor inertia (kg m^2) added to each arm joint."""
    joint_friction: float | None = Field(None, ge=0, le=50)
    """Dry friction (N m, MuJoCo frictionloss) of each arm joint."""
    stiffness_scale: float = Field(1.0, gt=0, le=10)
    """Factor on the stiffness of the joint impedance controller (the arm's position actuators)."""
    damping_ratio: float = Field(1.0, gt=0, le=10)
    """Damping ratio of the joint impedance controller (1 = critically damped)."""
    command_latency_steps: int = Field(0, ge=0, le=10)
    """Control periods a command waits before the twin's arm acts on it (on top of randomised latency)."""


# --- network ---------------------------------------------------------------------------


class SecurityConfig(_Strict):
    """DDS security (SROS2): only participants with certificates from the rig's keystore join the graph."""

    enabled: bool = False
    keystore: Path | None = None
    """SROS2 keystore directory; each process uses the enclave `/tether/<node>` (or `/tether/graph`) in it."""
    enforce: bool = True
    """Refuse to start without valid security files (ROS_SECURITY_STRATEGY=Enforce); off falls back to
    an unsecured participant (Permissive), which is for bring-up only."""

    @model_validator(mode="after")
    def _keystore_given(self) -> SecurityConfig:
        if self.enabled and self.keystore is None:
            raise ValueError("enabled: true needs a keystore directory")
        return self


class NetworkConfig(_Strict):
    """Who the rig's ROS 2 graph talks to. Closed by default: DDS discovery stays on this host."""

    discovery: Literal["off", "localhost", "subnet"] = "localhost"
    """Automatic discovery range: `localhost` (this host only), `subnet` (multicast on the local network,
    for multi-host rigs), or `off` (only the static peers)."""
    static_peers: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.:-]*$", max_length=253)]] = Field(
        default_factory=list, max_length=32
    )
    """Hosts (names or IP addresses) contacted directly whatever the discovery range (ROS_STATIC_PEERS)."""
    domain_id: int | None = Field(None, ge=0, le=232)
    """ROS domain; None leaves it to ROS_DOMAIN_ID (or 0). Every host of a multi-host rig needs the same one."""
    security: SecurityConfig = SecurityConfig()

    @field_validator("static_peers")
    @classmethod
    def _unique_peers(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a peer is listed twice")
        return value


# --- the rig ---------------------------------------------------------------------------


class RigConfig(_Strict):
    name: str
    namespace: str = Field("/tether", pattern=r"^/[A-Za-z0-9_/]*$")
    arm: ArmConfig
    cameras: list[CameraConfig] = Field(default_factory=list)
    teleop: TeleopConfig = TeleopConfig()
    task: TaskConfig = TaskConfig()
    safety: SafetyConfig = SafetyConfig()
    randomization: RandomizationConfig = RandomizationConfig()
    twin_dynamics: TwinDynamics = TwinDynamics()
    """Identified dynamics of the twin of this rig's arm."""
    twin_scene: TwinScene = TwinScene()
    """Table colour and lighting of the twin."""
    mirror: MirrorConfig = MirrorConfig()
    network: NetworkConfig = NetworkConfig()
    """Who the graph talks to: this host only unless the rig opens it (see docs/ros2.md)."""

    @model_validator(mode="after")
    def _consistent(self) -> RigConfig:
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")
        detect = self.mirror.detect_camera
        if detect is not None and detect not in names:
            raise ValueError(f"mirror.detect_camera '{detect}' is not one of the cameras {names}")
        if self.safety.staleness_s < 1.0 / self.arm.control_rate_hz:
            raise ValueError("safety.staleness_s is shorter than one control period")
        if self.arm.frame_to_command_s >= 1.0 / self.arm.control_rate_hz:
            raise ValueError("arm.frame_to_command_s must be shorter than one control period")
        return self

    @property
    def control_dt(self) -> float:
        return 1.0 / self.arm.control_rate_hz


def rig_names() -> list[str]:
    """Names of the rigs shipped in hardware_configs/."""
    root = importlib.resources.files("tether.hardware_configs")
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def resolve_rig_path(rig: str | Path) -> Path:
    """A rig given by name (`twin_panda`) or by path to a YAML file."""
    text = str(rig)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        return Path(text)
    resource = importlib.resources.files("tether.hardware_configs") / f"{text}.yaml"
    if not resource.is_file():
        raise ConfigError(f"rig '{text}': no such rig (known: {', '.join(rig_names())})")
    return Path(str(resource))


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML loading that refuses a key given twice instead of keeping the last, and refuses aliases
    (`*name`): a few lines of nested aliases expand to gigabytes, and a rig has no need of them."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"alias '*{event.anchor}' (rig files take no aliases)", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _format_errors(path: Path, error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        loc = ".".join(str(p) for p in item["loc"] if not str(p).startswith(("function-", "tagged-union")))
        value = item.get("input")
        got = "" if isinstance(value, dict) or item["type"] == "missing" else f" (got {value!r})"
        parts.append(f"{loc or '<root>'}: {item['msg']}{got}")
    return f"{path}: " + "; ".join(parts)


def parse_rig(data: Any, source: Path | str = "<rig>") -> RigConfig:
    """Validate an already-parsed mapping as a rig."""
    path = Path(source)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return RigConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_errors(path, error)) from None


def load_rig(rig: str | Path = DEFAULT_RIG) -> RigConfig:
    """Load and validate a rig by name or path; raises ConfigError with one line on any problem."""
    path = resolve_rig_path(rig)
    if not path.is_file():
        raise ConfigError(f"{path}: rig file not found")
    size = path.stat().st_size
    if size > MAX_RIG_BYTES:
        raise ConfigError(f"{path}: {size} bytes, over the {MAX_RIG_BYTES} a rig file may have")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - safe loader subclass
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        reason = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{path}:{where}: invalid YAML: {reason}") from None
    rig_config = parse_rig(data, path)
    if isinstance(rig_config.arm, TwinArm) and rig_config.arm.model is not None:
        model = rig_config.arm.model
        if not model.is_absolute():
            model = (path.parent / model).resolve()
        if not model.is_file():
            raise ConfigError(f"{path}: arm.model: MJCF file not found: {model}")
        rig_config = rig_config.model_copy(update={"arm": rig_config.arm.model_copy(update={"model": model})})
    return rig_config
