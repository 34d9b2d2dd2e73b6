"""Actor node: the control loop. Observation in, one command out, every control period.

Each control step assembles the observation from the latest messages
(refusing the step if any input is older than the rig's staleness bound), asks the policy
for an action, lets an engaged human override it (with a sticky window after release),
publishes the command and the policy's own proposal, and streams each transition (with its
intervened flag) to the learner and the recorder. New weights are decoded on another thread
and swapped in between steps, so the loop never waits for the learner. Episodes end on success /
failure / time limit and reset through the arm node's service.

When the learner dies (the process that supervises it calls `learner_lost`), the actor either
keeps acting with the last weights it has (`act`), or holds (`hold`): it ends the episode under
way as truncated (outcome `learner_lost`, so the recorder commits it), commands zero motion, and
starts no new episode until fresh weights arrive; in between it sends nothing, and the arm node's
watchdog keeps the arm holding. Whether the weights in hand are fresh is on `diagnostics`.

When: a state policy steps on a timer at the rig's control rate. A camera policy steps as soon as every
camera has delivered a frame newer than those of its last step (acquired at least `FRAME_GAP` control
periods after them), so a command is computed from frames that are milliseconds old rather than up to a
period old, and publishes it `arm.frame_to_command_s` after the frames' acquisition (one fixed latency, no
jitter from render, transport or inference). A timer at four times the rate is the deadline: if frames
are `DEADLINE` periods late, the step runs on what there is (and the staleness bound decides whether that
is acting or holding).

Modes: `hil` (policy acts, human may take over), `teleop` (only the human acts: recording
demos) and `eval` (policy alone, deterministic).

The policy is one of `tether.policies.registry.load_policy` (any kind, for eval and deployment), else the
SAC policy built from the learner's weights. A trained residual or noise-steered checkpoint loads as one
policy that already runs its base. While a residual is being trained on the robot (`tether train hil
--base-policy`), the actor gets the `residual` (a frozen base policy, `tether.policies.residual.Residual`)
and the policy is the residual learner: the observation gains the base's proposal (`state/base_action`),
the policy's output is a bounded correction, the arm receives base + correction, and transitions carry
the residual of what the arm received (a human's command, unbounded, as the residual that reproduces it
exactly), so the learner trains on what was executed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float32, Float32MultiArray, String, UInt8MultiArray
from std_srvs.srv import Trigger

from tether import spaces
from tether.actions import gripper_part
from tether.config import RigConfig
from tether.policies.residual import BASE_ACTION, Residual
from tether.robot_ws import messages, qos
from tether.teleop.arbitration import StickyOverride
from tether.types import Observation, Transition

ActorMode = Literal["hil", "teleop", "eval"]
FRAME_GAP = 0.9
"""A camera policy steps on a fresh frame set only if it was acquired this many control periods after the frames
of its last step, so a camera faster than the control rate does not speed the loop up."""
DEADLINE = 1.25
"""Control periods after its last step at which a camera policy steps without waiting for frames any longer."""
RESET_REPLY_S = 30.0
"""Wall seconds the actor waits for arm/reset's reply before it asks again: DDS can lose a reply across processes
(a request sent just after discovery, before the server has matched the client's reply reader), and a reset
that is never answered would stall the graph for good. A repeated reset only homes the arm once more."""
LEARNER_LOST = "learner_lost"
"""The outcome of an episode a holding actor ended because its learner died."""


class Policy(Protocol):
    """What the actor needs of a policy: `tether.policies.registry.load_policy`'s, or SAC from the learner's weights."""

    observation_keys: tuple[str, ...]

    def act(self, obs: Observation) -> np.ndarray: ...

    def reset(self) -> None: ...


@dataclass
class _Latest:
    value: Any
    stamp: float
    """When the sender acquired it (its header), graph clock."""
    arrived: float
    """When this node received it."""


@dataclass(frozen=True)
class CommandTiming:
    """Where one command's time went (graph clock, s), in order: its oldest timed input (a camera frame, else
    the arm state) was acquired, the last of those inputs arrived, the step began, the policy answered, the
    command left; and which step of its episode it was (the first follows a reset, not a control period)."""

    oldest_input: float
    last_arrival: float
    tick: float
    inferred: float
    sent: float
    episode_step: int


@dataclass
class _Step:
    obs: Observation
    action: np.ndarray
    intervened: bool
    proposal: np.ndarray | None
    stamp: float


class ActorNode(Node):
    def __init__(
        self,
        rig: RigConfig,
        mode: ActorMode,
        observation_keys: tuple[str, ...],
        *,
        policy: Policy | None = None,
        residual: Residual | None = None,
        max_episodes: int | None = None,
        **node_kwargs,
    ) -> None:
        super().__init__("actor", namespace=rig.namespace, **node_kwargs)
        self.rig = rig
        self.mode = mode
        self.observation_keys = tuple(k for k in observation_keys if k != BASE_ACTION)  # computed, not received
        self.policy = policy
        self.residual = residual
        self.max_episodes = max_episodes
        self.counters: Counter[str] = Counter()
        self.weights_version = -1
        self.learner_present = True
        """False from `learner_lost` until the next weights arrive: the policy in hand is not learning."""
        self._hold_for_learner = False
        self.episode = 0
        self.episode_results: list[dict[str, Any]] = []
        self.done = threading.Event()
        self._latest: dict[str, _Latest] = {}
        self._pending_policy: Policy | None = None
        self._policy_lock = threading.Lock()
        self._override = StickyOverride(rig.teleop.sticky_s)
        self._events: list[str] = []
        self._events_lock = threading.Lock()
        self._phase = "reset"  # reset -> resetting -> running -> reset ...
        self._reset_future = None
        self._reset_sent = 0.0
        self._prev: _Step | None = None
        self._step = 0
        self._interventions = 0
        self._episode_start = 0.0
        self.timing: deque[CommandTiming] = deque(maxlen=100_000)
        # Inputs whose acquisition time bounds a command's latency: cameras, else the arm state.
        images = tuple(k for k in observation_keys if spaces.is_image_key(k))
        self._timed_inputs = images or ("tcp_pose",)
        self._frame_keys = images  # a camera policy steps on frame arrival
        self._sim_time = bool(self.get_parameter("use_sim_time").value)
        self._last_step = -np.inf  # graph time of the last control step
        self._used_frames: dict[str, float] = {}  # stamps of the frames the last step acted on

        inputs = ReentrantCallbackGroup()
        sub = lambda kind, topic, key, profile=qos.SENSOR: self.create_subscription(  # noqa: E731
            kind, topic, lambda msg: self._store(key, msg), profile, callback_group=inputs
        )
        on_frame = lambda key: lambda msg: self._on_frame(key, msg)  # noqa: E731
        sub(PoseStamped, "arm/tcp_pose", "tcp_pose")
        sub(TwistStamped, "arm/tcp_twist", "tcp_twist")
        sub(JointState, "arm/joint_states", "joints")
        sub(Float32, "gripper/state", "gripper")
        sub(Float32MultiArray, "twin/task_state", "task_state")
        sub(Bool, "twin/success", "success")
        sub(TwistStamped, "teleop/cmd", "teleop_cmd", qos.COMMAND)
        sub(Float32, "teleop/gripper", "teleop_gripper", qos.COMMAND)
        sub(Bool, "teleop/engaged", "teleop_engaged", qos.COMMAND)
        for key in observation_keys:
            if spaces.is_image_key(key):
                camera = key[len(spaces.IMAGES) :]
                self.create_subscription(Image, f"cameras/{camera}/image_raw", on_frame(key), qos.SENSOR,
                                         callback_group=inputs)
        self.create_subscription(String, "episode/events", self._on_event, qos.EVENTS, callback_group=inputs)
        if mode != "teleop":
            self.create_subscription(
                UInt8MultiArray, "learner/weights", self._on_weights, qos.LATCHED,
                callback_group=MutuallyExclusiveCallbackGroup(),
            )

        self.cmd_pub = self.create_publisher(TwistStamped, "arm/cmd", qos.COMMAND)
        self.gripper_pub = self.create_publisher(Float32, "gripper/cmd", qos.COMMAND)
        self.proposal_pub = self.create_publisher(TwistStamped, "policy/action", qos.COMMAND)
        self.proposal_gripper_pub = self.create_publisher(Float32, "policy/gripper", qos.COMMAND)
        self.transition_pub = self.create_publisher(UInt8MultiArray, "learner/transitions", qos.STREAM)
        self.events_pub = self.create_publisher(String, "episode/events", qos.EVENTS)
        self.reset_client = self.create_client(Trigger, "arm/reset", callback_group=MutuallyExclusiveCallbackGroup())
        self.diag_pub = self.create_publisher(DiagnosticArray, "diagnostics", qos.COMMAND)
        tick = rig.control_dt / 4 if self._frame_keys else rig.control_dt  # with cameras: the deadline's resolution
        self.create_timer(tick, self._tick, callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(1.0, self._publish_diagnostics, callback_group=MutuallyExclusiveCallbackGroup())

    # --- inputs -----------------------------------------------------------------------

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _store(self, key: str, msg: Any) -> None:
        header = getattr(msg, "header", None)
        stamp = messages.from_stamp(header.stamp) if header is not None else self._now()
        self._latest[key] = _Latest(msg, stamp, self._now())

    def _on_frame(self, key: str, msg: Image) -> None:
        """Store a camera frame; once every camera has one newer than the last step's, step now."""
        self._store(key, msg)
        if self._phase != "running" or any(k not in self._latest for k in self._frame_keys):
            return
        stamps = {k: self._latest[k].stamp for k in self._frame_keys}
        if not all(stamps[k] > self._used_frames.get(k, -np.inf) for k in stamps):
            return
        if self._used_frames and min(stamps.values()) - min(self._used_frames.values()) < FRAME_GAP * self.rig.control_dt:
            return
        self._run_step()

    def _on_event(self, msg: String) -> None:
        with self._events_lock:
            self._events.append(msg.data)

    def _on_weights(self, msg: UInt8MultiArray) -> None:
        """Decode on this thread; the control loop swaps the new policy in at its next tick."""
        from tether.policies.registry import SACPolicy  # torch loads in actors that receive weights only

        weights, version, config = messages.weights_from_msg(msg)
        policy = SACPolicy.from_weights(weights, config, deterministic=self.mode == "eval")
        with self._policy_lock:
            self._pending_policy = policy
            self.weights_version = version
            self.learner_present, self._hold_for_learner = True, False
        self.counters["weights_received"] += 1

    def learner_lost(self, hold: bool) -> None:
        """The learner is gone (its process died). Keep acting with the weights in hand, or with `hold`
        end the episode under way and start none until the next weights arrive (a restarted learner sends
        its checkpoint's weights as soon as it is up)."""
        with self._policy_lock:
            self.learner_present, self._hold_for_learner = False, hold
        self.counters["learner_lost"] += 1

    def _publish_diagnostics(self) -> None:
        """Whether the policy is still learning (fresh weights) or acting / holding on without a learner."""
        status = DiagnosticStatus(name="actor", hardware_id=self.mode)
        if self.learner_present:
            status.level, status.message = DiagnosticStatus.OK, f"weights v{self.weights_version}"
        else:
            doing = "holding" if self._hold_for_learner else "acting on"
            status.level, status.message = DiagnosticStatus.WARN, f"learner lost: {doing} weights v{self.weights_version}"
        fields = {"weights_version": self.weights_version, "weights_fresh": self.learner_present,
                  "holding_for_learner": self._hold_for_learner, "episode": self.episode, **self.counters}
        status.values = [KeyValue(key=k, value=str(v)) for k, v in fields.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = messages.to_stamp(self._now())
        self.diag_pub.publish(array)

    def _fresh(self, key: str, now: float) -> Any | None:
        latest = self._latest.get(key)
        if latest is None or now - latest.stamp > self.rig.safety.staleness_s:
            return None
        return latest.value

    def observation(self, now: float) -> Observation | None:
        """The observation for the policy, or None if any input is missing or stale."""
        sources = {
            spaces.TCP_POSE: ("tcp_pose", lambda m: messages.pose_array(m)),
            spaces.TCP_VEL: ("tcp_twist", lambda m: messages.twist_array(m)),
            spaces.JOINTS: ("joints", lambda m: np.asarray(m.position)),
            spaces.GRIPPER: ("gripper", lambda m: np.array([m.data])),
        }
        obs: Observation = {}
        task_state = None
        for key in self.observation_keys:
            if key in sources:
                topic_key, convert = sources[key]
                msg = self._fresh(topic_key, now)
                if msg is None:
                    self.counters[f"stale_{topic_key}"] += 1
                    return None
                obs[key] = convert(msg).astype(np.float32)
            elif spaces.is_image_key(key):
                msg = self._fresh(key, now)
                if msg is None:
                    self.counters[f"stale_{key}"] += 1
                    return None
                obs[key] = messages.image_array(msg).copy()
            else:
                if task_state is None:
                    msg = self._fresh("task_state", now)
                    if msg is None:
                        self.counters["stale_task_state"] += 1
                        return None
                    task_state = messages.task_state_from_msg(msg)
                name = key[len(spaces.STATE) :]
                if name not in task_state:
                    raise KeyError(f"observation key '{key}': not published on twin/task_state")
                obs[key] = task_state[name]
        return obs

    def _human_action(self, now: float) -> np.ndarray | None:
        engaged_msg = self._fresh("teleop_engaged", now)
        engaged = bool(engaged_msg.data) if engaged_msg is not None else False
        if self.mode == "eval" or not self._override.human_acts(engaged, now):
            return None
        cmd = self._fresh("teleop_cmd", now)
        if cmd is None:
            return None
        gripper_msg = self._fresh("teleop_gripper", now)
        gripper = float(gripper_msg.data) if gripper_msg is not None else 0.0
        return messages.velocity_to_action(messages.twist_array(cmd), gripper, self.rig)

    # --- the control loop -------------------------------------------------------------

    def stop(self) -> None:
        """Stop commanding: the last command sent is a hold."""
        self._phase = "stopped"
        self._publish_hold(self._now())

    def _tick(self) -> None:
        if self._phase == "stopped":
            return
        with self._policy_lock:
            if self._pending_policy is not None:
                self.policy, self._pending_policy = self._pending_policy, None
        if self._phase == "reset":
            return self._begin_reset()
        if self._phase == "resetting":
            if self._reset_future is not None and self._reset_future.done():
                self._start_episode()
            elif time.monotonic() - self._reset_sent > RESET_REPLY_S:
                self.reset_client.remove_pending_request(self._reset_future)  # a late reply is dropped
                self.counters["reset_reply_lost"] += 1
                self.get_logger().warning(f"arm/reset: no reply within {RESET_REPLY_S:.0f} s; asking again")
                self._phase = "reset"
            return
        if not self._frame_keys or self._now() - self._last_step >= DEADLINE * self.rig.control_dt:
            self._run_step()

    def _begin_reset(self) -> None:
        if self.max_episodes is not None and self.episode >= self.max_episodes:
            self.done.set()
            return
        if self.mode != "teleop" and self.policy is None:
            self.counters["waiting_for_weights"] += 1  # the first episode starts with the learner's weights
            return
        if self._hold_for_learner:
            self.counters["holding_for_learner"] += 1
            return
        if not self.reset_client.service_is_ready():
            self.counters["reset_service_waiting"] += 1
            return
        self._phase = "resetting"
        self._reset_future = self.reset_client.call_async(Trigger.Request())
        self._reset_sent = time.monotonic()

    def _start_episode(self) -> None:
        result = self._reset_future.result()
        if result is None or not result.success:
            self.get_logger().error(f"arm/reset failed: {getattr(result, 'message', 'no reply')}")
            self._phase = "reset"
            return
        self._latest.clear()  # nothing from before the reset may reach the new episode
        with self._events_lock:
            self._events.clear()
        self.events_pub.publish(String(data="reset"))
        self._override.reset()
        if self.policy is not None:  # a stateful policy (action chunks) starts its history afresh
            self.policy.reset()
        if self.residual is not None:
            self.residual.reset()
        self._prev, self._step, self._interventions = None, 0, 0
        self._episode_start = self._now()
        self.episode += 1
        self._phase = "running"

    def _run_step(self) -> None:
        now = self._now()
        self._last_step = now
        obs = self.observation(now)
        if obs is None:
            self._publish_hold(now)
            return
        # Frames count as used once a step acted on them: a step that found another input missing leaves them
        # to the next one.
        self._used_frames = {k: self._latest[k].stamp for k in self._frame_keys}
        if self.residual is not None:
            obs = self.residual.observe(obs)
        with self._events_lock:
            events, self._events = self._events, []
        # The twin's success flag counts only if it was sent during this episode, not before the reset.
        success_latest = self._latest.get("success")
        twin_success = (
            success_latest is not None
            and success_latest.stamp > self._episode_start + 0.5 * self.rig.control_dt
            and now - success_latest.stamp <= self.rig.safety.staleness_s
            and bool(success_latest.value.data)
        )
        success = twin_success or "success" in events
        failure = "failure" in events
        stop = "stop" in events or "rerecord" in events or self._hold_for_learner

        if self._prev is not None:
            terminated = success or failure
            truncated = not terminated and (self._step >= self.rig.task.episode_length or stop)
            outcome = ""
            if terminated or truncated:
                outcome = (
                    "rerecord" if "rerecord" in events else "success" if success else "failure" if failure
                    else LEARNER_LOST if self._hold_for_learner else "timeout"
                )
            self._emit(self._prev, float(success), obs, terminated, truncated, outcome)
            if outcome:
                self.events_pub.publish(String(data=outcome))
                self.episode_results.append(
                    {"episode": self.episode, "success": bool(success), "length": self._step,
                     "interventions": self._interventions, "outcome": outcome}
                )
                self._publish_hold(now)
                self._phase = "reset"
                return
        if self._hold_for_learner:  # the learner died as this episode began: do not start acting in it
            self._publish_hold(now)
            self._phase = "reset"
            return

        proposal = None
        if self.policy is not None and self.mode != "teleop":
            policy_obs = {key: obs[key] for key in self.policy.observation_keys}
            proposal = np.asarray(self.policy.act(policy_obs), dtype=np.float32)
        inferred = self._now()
        human = self._human_action(now)
        if human is None and self.mode == "teleop":
            # Recording: a step nobody commanded is not a demonstration step; hold until the human acts.
            self.counters["waiting_for_human"] += 1
            self._publish_hold(now)
            return
        if human is not None:
            action, intervened = human, True
            self._interventions += 1
        elif proposal is not None:
            action, intervened = proposal, False
        else:
            action, intervened = np.zeros(spaces.action_space(self.rig).shape, np.float32), False
        self._wait_for_release()
        if self.residual is None:
            self._publish_action(action, proposal, now)
        else:  # `action` so far is what the arm gets from a human (unbounded), else the policy's residual
            executed = action if intervened else self.residual.execute(obs, action)
            self._publish_action(executed, None if proposal is None else self.residual.execute(obs, proposal), now)
            action = self.residual.residual_of(obs, executed)  # stored: the residual of what the arm received
        sent = self._now()
        timed = [self._latest[k] for k in self._timed_inputs]
        self.timing.append(CommandTiming(oldest_input=min(t.stamp for t in timed),
                                         last_arrival=max(t.arrived for t in timed), tick=now, inferred=inferred,
                                         sent=sent, episode_step=self._step))
        proprio_stamp = self._latest["tcp_pose"].stamp if "tcp_pose" in self._latest else now
        self._prev = _Step(obs, action, intervened, proposal, proprio_stamp)
        self._step += 1
        self.counters["steps"] += 1
        self.counters["intervened_steps"] += int(intervened)

    def _wait_for_release(self) -> None:
        """Hold a camera policy's command until `frame_to_command_s` after its frames were acquired."""
        offset = self.rig.arm.frame_to_command_s
        if not self._frame_keys or offset <= 0 or self._sim_time:
            return
        delay = min(self._latest[k].stamp for k in self._frame_keys) + offset - self._now()
        if delay > 0:  # never more than the offset, whatever a sender's clock says
            time.sleep(min(delay, offset))

    def _emit(
        self, prev: _Step, reward: float, next_obs: Observation, terminated: bool, truncated: bool, outcome: str
    ) -> None:
        transition = Transition(
            obs=prev.obs, action=prev.action, reward=reward, next_obs=next_obs, terminated=terminated,
            truncated=truncated, intervened=prev.intervened, policy_action=prev.proposal,
        )
        msg = messages.transition_msg(transition, prev.stamp, self.episode, self._step - 1, outcome)
        self.transition_pub.publish(msg)
        self.counters["transitions"] += 1

    def _publish_action(self, action: np.ndarray, proposal: np.ndarray | None, now: float) -> None:
        self.cmd_pub.publish(messages.twist_msg(messages.action_to_velocity(action, self.rig), now))
        gripper = gripper_part(action)
        if gripper is not None:  # a task that holds the gripper (reach) commands none
            self.gripper_pub.publish(Float32(data=gripper))
        if proposal is not None:  # the gripper first: a watcher takes the twist as the whole proposal
            proposed_gripper = gripper_part(proposal)
            if proposed_gripper is not None:
                self.proposal_gripper_pub.publish(Float32(data=proposed_gripper))
            self.proposal_pub.publish(messages.twist_msg(messages.action_to_velocity(proposal, self.rig), now))

    def _publish_hold(self, now: float) -> None:
        self.cmd_pub.publish(messages.twist_msg(np.zeros(6), now))
        self.counters["holds"] += 1
