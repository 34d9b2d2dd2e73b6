"""Learner node: the learner core fed by the actor's transitions, its updates on their own thread.

The core (`tether.policies.learner.Learner`) does the buffers, interventions, the update schedule
(one `agent.update` per received environment step once learning starts, never faster than data
arrives), metrics and checkpoints; this node is its ROS plumbing. Weights go out on
`learner/weights` (transient-local, so an actor that starts or restarts later gets the latest)
every `publish_every` updates. The run directory has the core's layout (docs/learner.md); a
restarted learner resumes from it; a checkpoint is written every `checkpoint_every` steps and on
shutdown.

Intake refuses what must never reach a buffer: transitions that do not fit it (another graph on
the domain) and transitions with a NaN or inf anywhere (a sensor glitch, a diverged policy), each
counted in `stats()` and on `diagnostics`, with a throttled warning, never an exception.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from std_msgs.msg import UInt8MultiArray

from tether.actions import ActionScale
from tether.config import RigConfig
from tether.datasets.episode import EpisodeArrays
from tether.datasets.replay import ReplayBuffer
from tether.policies.checkpoint import TRAINING_FILE
from tether.policies.learner import CHECKPOINT_DIR, Learner, LoopConfig
from tether.policies.residual import BASE_ACTION, residual_episode
from tether.policies.sac import SACAgent, SACConfig
from tether.policies.steering import CONFIG_KEY, Steering
from tether.robot_ws import messages, qos
from tether.types import Transition

log = logging.getLogger(__name__)

STATS = "learner_stats.json"
QUIET_S = 0.5
"""A stopping learner first takes the transitions still queued for it, until none has come for this long (the
actor's last ones are published just before the stop), so the final checkpoint and stats hold every one."""
DRAIN_S = 5.0
"""The longest a stopping learner waits for that quiet."""


def non_finite_parts(transition: Transition) -> list[str]:
    """The parts of a transition holding a NaN or inf (`obs['state/tcp_pose']`, `reward`, ...); empty if none."""
    parts = [
        f"{name}['{key}']"
        for name, obs in (("obs", transition.obs), ("next_obs", transition.next_obs))
        for key, value in obs.items()
        if not np.isfinite(value).all()
    ]
    for name, value in (("action", transition.action), ("reward", transition.reward),
                        ("policy_action", transition.policy_action)):
        if value is not None and not np.isfinite(value).all():
            parts.append(name)
    return parts


class LearnerNode(Node):
    """The learner core (`tether.policies.learner.Learner`) behind ROS 2 topics: transitions in, weights out."""

    def __init__(
        self,
        rig: RigConfig,
        observation_space: gym.spaces.Dict,
        run_dir: Path,
        *,
        sac: SACConfig | None = None,
        loop: LoopConfig | None = None,
        demos: Path | None = None,
        steering: Steering | None = None,
        publish_every: int = 20,
        seed: int = 0,
        **node_kwargs,
    ) -> None:
        super().__init__("learner", namespace=rig.namespace, **node_kwargs)
        self.rig = rig
        self.loop = loop or LoopConfig()
        self.run_dir = Path(run_dir)
        self.publish_every = publish_every
        self.rejected = 0
        self.non_finite = 0
        self._last_intake = time.monotonic()
        self._stop = threading.Event()
        self.steering = steering
        checkpoint = self.run_dir / CHECKPOINT_DIR
        resuming = (checkpoint / TRAINING_FILE).is_file()
        layout = ActionScale.of_rig(rig)
        if sac is None and not layout.gripper:  # the rig's task (reach) commands no gripper: nothing to grasp with
            sac = SACConfig(grasp_critic=False)
        if steering is not None:
            sac = steering.sac_config(sac or SACConfig())
        agent = (SACAgent.load(checkpoint) if resuming
                 else SACAgent(observation_space, layout.dim, sac, seed=seed))
        self.learner = Learner(agent, self.loop, seed=seed, run_dir=self.run_dir, online_source="hil",
                               fps=rig.arm.control_rate_hz)
        if self.learner.resume() is not None:
            self.get_logger().info(
                f"resumed from {checkpoint}: {self.env_steps} env steps, {int(agent.critic_updates)} critic updates, "
                f"{len(self.online)} online and {len(self.demos)} demo transitions"
            )
        elif demos is not None:
            loaded = self.learner.add_demos(demos, self._residual_of())
            self.get_logger().info(f"{loaded.transitions} demo transitions ({loaded.episodes} episodes) from {demos}; "
                                   f"{loaded.skipped} failed or unlabelled episodes skipped")
        self.weights_pub = self.create_publisher(UInt8MultiArray, "learner/weights", qos.LATCHED)
        self.create_subscription(UInt8MultiArray, "learner/transitions", self._on_transition, qos.STREAM)
        self.diag_pub = self.create_publisher(DiagnosticArray, "diagnostics", qos.COMMAND)
        self.create_timer(1.0, self._publish_diagnostics)
        self._publish_weights()
        self._thread = threading.Thread(target=self._train, name="learner-updates", daemon=True)
        self._thread.start()

    def _residual_of(self) -> Callable[[EpisodeArrays], EpisodeArrays] | None:
        """Steering a base policy, each demo episode as the residual learner sees it."""
        if self.steering is None:
            return None
        residual = self.steering.residual(asynchronous=False)
        keys = tuple(k for k in self.learner.demos.observation_space.spaces if k != BASE_ACTION)
        return lambda episode: residual_episode(episode, residual, keys)

    @property
    def online(self) -> ReplayBuffer:
        return self.learner.online

    @property
    def demos(self) -> ReplayBuffer:
        return self.learner.demos

    @property
    def env_steps(self) -> int:
        return self.learner.state.env_steps

    @property
    def updates(self) -> int:
        return self.learner.state.updates

    # --- data in ----------------------------------------------------------------------

    def _on_transition(self, msg: UInt8MultiArray) -> None:
        try:
            self._take(msg)
        finally:
            self._last_intake = time.monotonic()

    def _take(self, msg: UInt8MultiArray) -> None:
        transition, _ = messages.transition_from_msg(msg)
        try:
            self.online.check(transition)
        except ValueError as error:  # e.g. another graph on this ROS domain: refuse it, keep learning
            self.rejected += 1
            self.get_logger().error(f"transition refused: {error}", throttle_duration_sec=5.0)
            return
        bad = non_finite_parts(transition)
        if bad:  # one NaN in a batch poisons every network it reaches: never into a buffer
            self.non_finite += 1
            self.get_logger().warning(
                f"transition dropped: non-finite {', '.join(bad)} ({self.non_finite} so far)", throttle_duration_sec=5.0
            )
            return
        self.learner.add(transition)
        if self.env_steps % self.loop.checkpoint_every == 0:
            self.checkpoint()

    # --- updates ----------------------------------------------------------------------

    def _train(self) -> None:
        if self.learner.pretrain(self._stop):  # the offline phase on the demos, then its weights to the actor
            self._publish_weights()
        while not self._stop.is_set():
            if self.learner.update_if_due() is None:
                time.sleep(0.002)
            elif self.updates % self.publish_every == 0:
                self._publish_weights()

    def _publish_weights(self) -> None:
        weights, config, version = self.learner.policy_weights()
        self.weights_pub.publish(messages.weights_msg(weights, version, config))

    # --- persistence ------------------------------------------------------------------

    def checkpoint(self) -> Path:
        """Agent (weights, optimisers, RNG, counters) and both buffers into the run directory."""
        steering = {CONFIG_KEY: self.steering.to_json()} if self.steering is not None else None
        return self.learner.checkpoint(extra_config=steering)

    def stats(self) -> dict[str, float]:
        return {
            "env_steps": self.env_steps,
            "updates": self.updates,
            "critic_updates": int(self.learner.agent.critic_updates),
            "updates_per_s": self.learner.updates_per_second,
            "online_transitions": len(self.online),
            "demo_transitions": len(self.demos),
            "demo_episodes_skipped": self.learner.state.demos_skipped,
            "rejected_transitions": self.rejected,
            "non_finite_transitions": self.non_finite,
        }

    def _publish_diagnostics(self) -> None:
        stats = self.stats()
        status = DiagnosticStatus(name="learner", hardware_id="learner")
        dropped = stats["rejected_transitions"] + stats["non_finite_transitions"]
        status.level = DiagnosticStatus.WARN if dropped else DiagnosticStatus.OK
        status.message = f"{stats['env_steps']} env steps, {stats['updates']} updates, {dropped} transitions dropped"
        status.values = [KeyValue(key=k, value=f"{v:.3g}" if isinstance(v, float) else str(v)) for k, v in stats.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)

    def shutdown(self) -> None:
        """Take what is still queued, stop updating, checkpoint, and leave the run's figures in learner_stats.json."""
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline and time.monotonic() - self._last_intake < QUIET_S:
            time.sleep(0.05)
        self._stop.set()
        self._thread.join(timeout=10.0)
        self.checkpoint()
        self.learner.flush_metrics()
        self.learner.close()
        (self.run_dir / STATS).write_text(json.dumps(self.stats(), indent=2))
