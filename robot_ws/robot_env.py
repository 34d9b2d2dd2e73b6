"""`RobotEnv`: a running tether graph as a gymnasium env, so any gymnasium-speaking learner trains on a rig.

It is one more node on the graph, `robot_env`, in a ROS context of its own (spun on its own thread by
`NodeSpinners`), so it runs the same in the process of a `Graph` (beside its nodes, found over DDS like
any other) or in a process of its own; `close()` destroys the node and shuts its context down. It takes
the actor's place: never both on one graph.

    reset():  hold ──► arm/reset (Trigger) ──► "reset" on episode/events ──► first fresh obs
    step(a):  arm/cmd (velocity) + gripper/cmd ──► wait for the next control tick ──► fresh obs
              ──► reward / termination from twin/success and episode/events

- Actions are the normalised convention of DESIGN.md; `tether.robot_ws.messages.action_to_velocity`
  turns them into the `arm/cmd` velocity, so the arm node applies `action_scale` per control period.
  Commands go through the arm node like anyone's: clipping, speed limits, e-stop and the watchdog hold
  whatever RobotEnv does (an agent that stops calling `step` leaves the arm holding).
- Observations have the keys, shapes and dtypes of `tether.robot_ws.graph.observation_space_of` (the
  actor's), hence of the in-process twin env for the same rig and `obs_mode`. Every input must be
  younger than the rig's `safety.staleness_s` on the node's clock: `step` waits for fresh data up to that
  bound past the tick, then raises `StaleObservation` naming the topic, never returning old data.
- Steps are paced on the node's clock at the rig's control rate (`sim_time=True` follows the twin's
  /clock, for graphs run with a time scale other than 1). A step that starts late re-anchors the pace.
- Reward is sparse: 1 on success, from the graph's task judge (`twin/success`: the twin, or the reach
  node on a real arm) or a `success` event (an operator's key). `failure` ends the episode as terminated;
  `stop` / `rerecord` and the rig's `task.episode_length` truncate it. A reward classifier is a wrapper
  (`tether.policies.reward_classifier.ClassifierReward`), as for the twin.
- `reset(seed=...)` seeds `np_random` only: a robot (or a graph's twin) draws its own scenes, which is
  why the env's spec says `nondeterministic`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import gymnasium as gym
import numpy as np
import rclpy
from gymnasium.envs.registration import EnvSpec
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float32, Float32MultiArray, String
from std_srvs.srv import Trigger

from tether import spaces
from tether.actions import gripper_part
from tether.config import RigConfig
from tether.robot_ws import messages, qos
from tether.robot_ws.graph import GraphSpec, observation_space_of
from tether.robot_ws.network import enclave_of, new_context
from tether.robot_ws.spinning import NodeSpinners
from tether.sim2real.twin.tasks import make_task
from tether.types import DeviceError, Observation

NODE_NAME = "robot_env"
TASK_STATE = "twin/task_state"
SUCCESS = "twin/success"
WAIT_POLL_S = 0.002
"""Wall seconds between looks at the node's clock while waiting (sim time moves without callbacks here)."""

T = TypeVar("T")


class StaleObservation(DeviceError):
    """An input topic delivered nothing younger than the rig's staleness bound."""


# Proprioception: observation key -> (topic, message type, message -> vector).
PROPRIO_SOURCES: dict[str, tuple[str, type, Callable[[Any], np.ndarray]]] = {
    spaces.TCP_POSE: ("arm/tcp_pose", PoseStamped, messages.pose_array),
    spaces.TCP_VEL: ("arm/tcp_twist", TwistStamped, messages.twist_array),
    spaces.JOINTS: ("arm/joint_states", JointState, lambda msg: np.asarray(msg.position)),
    spaces.GRIPPER: ("gripper/state", Float32, lambda msg: np.array([msg.data])),
}


def source_of(key: str) -> tuple[str, type]:
    """The topic an observation key comes from, and its message type."""
    if key in PROPRIO_SOURCES:
        return PROPRIO_SOURCES[key][:2]
    if spaces.is_image_key(key):
        return f"cameras/{key[len(spaces.IMAGES):]}/image_raw", Image
    return TASK_STATE, Float32MultiArray


class RobotEnv(gym.Env):
    """The rig behind a running graph (arm node, cameras, a task judge) as a gymnasium env."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        rig: RigConfig,
        obs_mode: Literal["state", "pixels", "all"] = "state",
        *,
        sim_time: bool = False,
        timeout_s: float = 5.0,
    ) -> None:
        """`sim_time`: the graph runs on the twin's /clock (a time scale other than 1). `timeout_s`: the
        most wall time a call waits on the graph (the reset service, a first observation, a stopped clock)."""
        if obs_mode not in ("state", "pixels", "all"):
            raise ValueError(f"obs_mode '{obs_mode}': must be 'state', 'pixels' or 'all'")
        self.rig = rig
        self.timeout_s = timeout_s
        self.observation_space = observation_space_of(GraphSpec(rig=rig, nodes=(), obs_mode=obs_mode))
        self.action_space = spaces.action_space(rig)
        self.episode_length = rig.task.episode_length
        self.metadata = {**self.metadata, "render_fps": rig.arm.control_rate_hz}
        self.spec = EnvSpec("tether/RobotEnv-v0", entry_point=f"{__name__}:RobotEnv", nondeterministic=True)
        self._topics = {key: source_of(key)[0] for key in self.observation_space.spaces}
        self._latest: dict[str, tuple[Any, float]] = {}  # topic -> (message, acquisition time, node clock)
        self._events: list[str] = []
        self._events_since_ns = time.time_ns()  # events sent before the episode began are not its own
        self._changed = threading.Condition()
        self._episode_start = 0.0
        self._tick = 0.0
        self._steps: int | None = None  # None until the first reset
        self._closed = False

        self.context = new_context(rig.network, enclave_of((NODE_NAME,)))
        overrides = [Parameter("use_sim_time", Parameter.Type.BOOL, True)] if sim_time else []
        self.node = Node(
            NODE_NAME, namespace=rig.namespace, context=self.context, parameter_overrides=overrides
        )
        for topic, kind in {*map(source_of, self.observation_space.spaces), (SUCCESS, Bool)}:
            store = lambda msg, topic=topic: self._store(topic, msg)  # noqa: E731
            self.node.create_subscription(kind, topic, store, qos.SENSOR)
        self.node.create_subscription(String, "episode/events", self._on_event, qos.EVENTS)
        self.cmd_pub = self.node.create_publisher(TwistStamped, "arm/cmd", qos.COMMAND)
        self.gripper_pub = self.node.create_publisher(Float32, "gripper/cmd", qos.COMMAND)
        self.events_pub = self.node.create_publisher(String, "episode/events", qos.EVENTS)
        self.reset_client = self.node.create_client(Trigger, "arm/reset")
        self.spinners = NodeSpinners(self.context)
        self.spinners.add(self.node)
        self.spinners.start()

    # --- inputs (executor thread) -----------------------------------------------------

    def _now(self) -> float:
        """The node's clock, s (0 on sim time until the first /clock)."""
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _store(self, topic: str, msg: Any) -> None:
        header = getattr(msg, "header", None)
        stamp = messages.from_stamp(header.stamp) if header is not None else self._now()
        with self._changed:
            self._latest[topic] = (msg, stamp)
            self._changed.notify_all()

    def _on_event(self, msg: String, info: dict) -> None:
        with self._changed:
            if info["source_timestamp"] >= self._events_since_ns:
                self._events.append(msg.data)

    # --- gymnasium API ----------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._check_open()
        self._send(None)
        if not self.reset_client.wait_for_service(timeout_sec=self.timeout_s):
            raise DeviceError(f"arm/reset: no arm node answered within {self.timeout_s:g} s")
        future = self.reset_client.call_async(Trigger.Request())
        result = self._wait(lambda now: future.result() if future.done() else None, "arm/reset answer")
        if not result.success:
            raise DeviceError(f"arm/reset failed: {result.message}")
        with self._changed:  # nothing from before the reset may reach the new episode
            self._latest.clear()
            self._events.clear()
            self._events_since_ns = time.time_ns()
        self._episode_start = self._wait(lambda now: now, "clock on the graph")
        self.events_pub.publish(String(data="reset"))
        obs = self._fresh_observation(None)
        self._tick, self._steps = self._now(), 0
        return obs, {"success": False, "action_rejected": False}

    def step(self, action: np.ndarray):
        self._check_open()
        if self._steps is None:
            raise RuntimeError("RobotEnv: step() before reset()")
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            shape = self.action_space.shape
            raise ValueError(f"action of shape {action.shape}: rig '{self.rig.name}' takes {shape}")
        finite = bool(np.all(np.isfinite(action)))
        self._send(np.clip(action, -1.0, 1.0))  # a non-finite one: the arm node rejects it and holds
        dt = self.rig.control_dt
        target = self._tick + dt
        now = self._wait(lambda now: now if now >= target else None, "next control tick (a stopped clock?)")
        self._tick = target if now - target < dt else now  # a step that started late re-anchors the pace
        obs = self._fresh_observation(self._tick)
        self._steps += 1

        with self._changed:
            events, self._events = self._events, []
        success = self._judged_success(now) or "success" in events
        terminated = success or "failure" in events
        stop = "stop" in events or "rerecord" in events
        truncated = not terminated and (self._steps >= self.episode_length or stop)
        if terminated or truncated:
            self._send(None)
        return obs, float(success), terminated, truncated, {"success": success, "action_rejected": not finite}

    def close(self) -> None:
        """Hold the arm, destroy the node, shut the context down; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.context.ok():
            self._send(None)
        self.spinners.shutdown()
        self.node.destroy_node()

    # --- internals --------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("RobotEnv: used after close()")

    def _send(self, action: np.ndarray | None) -> None:
        """One command on arm/cmd (and gripper/cmd); None holds (zero velocity, gripper left as it is)."""
        stamp = self._now()
        if stamp == 0:  # no clock yet on sim time: this node commanded nothing, the arm holds by itself
            return
        if action is None:
            self.cmd_pub.publish(messages.twist_msg(np.zeros(6), stamp))
            return
        self.cmd_pub.publish(messages.twist_msg(messages.action_to_velocity(action, self.rig), stamp))
        gripper = gripper_part(action)
        if gripper is not None:  # a task that holds the gripper (reach) commands none
            self.gripper_pub.publish(Float32(data=gripper))

    def _wait(self, until: Callable[[float], T | None], what: str) -> T:
        """Wait until `until(now)` (node clock, once it runs) gives something; at most `timeout_s` (wall)."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            now = self._now()
            found = until(now) if now > 0 else None
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise DeviceError(f"RobotEnv: no {what} within {self.timeout_s:g} s")
            with self._changed:
                self._changed.wait(WAIT_POLL_S)

    def _fresh_observation(self, tick: float | None) -> Observation:
        """The observation once every input is fresh. Raises naming the stale input once the node's clock
        passes `tick + staleness_s`, or (after a reset: `tick` None; a stopped clock) after `timeout_s`."""
        limit = None if tick is None else tick + self.rig.safety.staleness_s
        why = ""

        def ready(now: float) -> Observation | None:
            nonlocal why
            obs, why = self._observation(now)
            if obs is None and limit is not None and now > limit:
                raise StaleObservation(why)
            return obs

        try:
            return self._wait(ready, "fresh observation")
        except StaleObservation:
            raise
        except DeviceError as error:
            raise StaleObservation(f"{error}: {why}" if why else str(error)) from None

    def _observation(self, now: float) -> tuple[Observation | None, str]:
        """The observation, or None and why: the first input with no message younger than `staleness_s`."""
        bound = self.rig.safety.staleness_s
        with self._changed:
            latest = dict(self._latest)
        for topic in dict.fromkeys(self._topics.values()):
            if topic not in latest:
                return None, f"{topic}: no message since the reset"
            age = now - latest[topic][1]
            if age > bound:
                return None, f"{topic}: newest message is {age:.2f} s old (safety.staleness_s: {bound:g} s)"
        obs: Observation = {}
        task_state = messages.task_state_from_msg(latest[TASK_STATE][0]) if TASK_STATE in latest else {}
        for key, topic in self._topics.items():
            msg = latest[topic][0]
            if key in PROPRIO_SOURCES:
                obs[key] = PROPRIO_SOURCES[key][2](msg).astype(np.float32)
            elif spaces.is_image_key(key):
                obs[key] = messages.image_array(msg).copy()
            else:
                name = key[len(spaces.STATE):]
                if name not in task_state:
                    raise ValueError(f"observation key '{key}': not published on {TASK_STATE}")
                obs[key] = task_state[name].copy()
        return obs, ""

    def _judged_success(self, now: float) -> bool:
        """The task judge's flag, if it was sent in this episode (after the reset) and is fresh."""
        with self._changed:
            latest = self._latest.get(SUCCESS)
        if latest is None:
            return False
        msg, stamp = latest
        fresh = now - stamp <= self.rig.safety.staleness_s
        return bool(msg.data) and fresh and stamp > self._episode_start + 0.5 * self.rig.control_dt


class ExpertView:
    """A RobotEnv observation as the twin the scripted operator (`tether.sim2real.twin.expert`) reads:
    TCP, gripper opening and task state, so the twin's expert drives a rig through RobotEnv (state obs)."""

    def __init__(self, rig: RigConfig, obs: Observation) -> None:
        self.rig = rig
        self.task = make_task(rig.task.name, rig.arm.workspace)
        self.obs = obs

    def tcp_pose(self) -> tuple[np.ndarray, None]:
        return self.obs[spaces.TCP_POSE][:3].astype(float), None  # the operator's plans use the position

    def gripper_opening(self) -> float:
        return float(self.obs[spaces.GRIPPER][0])

    def task_state(self) -> dict[str, np.ndarray]:
        return {name: self.obs[spaces.STATE + name] for name in self.task.state_dims}

