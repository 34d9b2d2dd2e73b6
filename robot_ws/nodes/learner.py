"""Learner node: replay buffers fed by the actor's transitions, SAC updates on their own thread.

Updates run at the agent's update-to-data ratio (one `agent.update` per received environment
step, each doing `utd_ratio` critic steps), never faster than data arrives. Weights go out on
`learner/weights` (transient-local, so an actor that starts or restarts later gets the latest)
every `publish_every` updates. The run directory holds the checkpoint and the buffers; a
restarted learner resumes from them, and one is written periodically and on shutdown.

Intake refuses what must never reach a buffer: transitions that do not fit it (another graph on
the domain) and transitions with a NaN or inf anywhere (a sensor glitch, a diverged policy), each
counted in `stats()` and on `diagnostics`, with a throttled warning, never an exception.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from std_msgs.msg import UInt8MultiArray

from tether.config import RigConfig
from tether.datasets.replay import MixedSampler, ReplayBuffer
from tether.datasets.replay_io import fill_replay, load_replay, replay_from_store, save_replay
from tether.datasets.store import EpisodeStore
from tether.policies.checkpoint import load_checkpoint
from tether.policies.residual import BASE_ACTION, residual_episode
from tether.policies.sac import SACAgent, SACConfig, space_from_json
from tether.policies.sac_loop import LoopConfig, rlif_transition
from tether.policies.steering import CONFIG_KEY, Steering
from tether.robot_ws import messages, qos
from tether.types import Transition

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"
ONLINE = "online.zarr"
DEMOS = "demos.zarr"
ENV_STEPS = "learner.env_steps"
STATS = "learner_stats.json"


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
        self.rng = np.random.default_rng(seed)
        self.env_steps = 0
        self.updates = 0
        self.rejected = 0
        self.non_finite = 0
        self.update_seconds = 0.0
        self._data_lock = threading.Lock()  # buffers and counters: held briefly by the subscription
        self._agent_lock = threading.Lock()  # the networks: held for an update or a weights snapshot
        self._stop = threading.Event()
        self._was_intervened = False
        self.steering = steering
        action_dim = rig.arm.action_dim
        checkpoint = self.run_dir / CHECKPOINT
        if (checkpoint / "config.json").exists():
            saved = load_checkpoint(checkpoint, training=True)
            self.agent = SACAgent(
                space_from_json(saved.config["observation_space"]), saved.config["action_dim"],
                SACConfig.model_validate(saved.config["sac"]),
            )
            self.agent.restore(saved, training=True)
            self.env_steps = int(saved.training_meta.get(ENV_STEPS, 0))
            self.online = load_replay(self.run_dir / ONLINE)
            self.demos = load_replay(self.run_dir / DEMOS)
            self.get_logger().info(
                f"resumed from {checkpoint}: {self.env_steps} env steps, {int(self.agent.critic_updates)} critic updates, "
                f"{len(self.online)} online and {len(self.demos)} demo transitions"
            )
        else:
            self.agent = SACAgent(observation_space, action_dim, sac, seed=seed)
            capacity = self.loop.buffer_capacity
            self.online = ReplayBuffer(observation_space, action_dim, capacity)
            self.demos = ReplayBuffer(observation_space, action_dim, capacity)
            if demos is not None:
                added = self._fill_demos(demos, seed)
                self.get_logger().info(f"{added} demo transitions from {demos}")
        self.weights_pub = self.create_publisher(UInt8MultiArray, "learner/weights", qos.LATCHED)
        self.create_subscription(UInt8MultiArray, "learner/transitions", self._on_transition, qos.STREAM)
        self.diag_pub = self.create_publisher(DiagnosticArray, "diagnostics", qos.COMMAND)
        self.create_timer(1.0, self._publish_diagnostics)
        self._publish_weights()
        self._thread = threading.Thread(target=self._train, name="learner-updates", daemon=True)
        self._thread.start()

    def _fill_demos(self, demos: Path, seed: int) -> int:
        """The demo buffer from a store; steering a base policy, each episode as the residual learner sees it."""
        if self.steering is None:
            return fill_replay(self.demos, EpisodeStore(demos))
        residual = self.steering.residual(seed=seed, asynchronous=False)
        keys = tuple(k for k in self.demos.observation_space.spaces if k != BASE_ACTION)
        before = len(self.demos)
        for episode in replay_from_store(demos).episodes():
            self.demos.add_episode(residual_episode(episode, residual, keys))
        return len(self.demos) - before

    # --- data in ----------------------------------------------------------------------

    def _on_transition(self, msg: UInt8MultiArray) -> None:
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
        takeover = transition.intervened and not self._was_intervened and transition.policy_action is not None
        with self._data_lock:
            if takeover and self.loop.rlif_penalty > 0:
                self.online.add(rlif_transition(transition, self.loop.rlif_penalty))
            self.online.add(transition)
            if transition.intervened:
                self.demos.add(transition)  # interventions teach like demonstrations (HIL-SERL)
            self.env_steps += 1
            due = self.env_steps % self.loop.checkpoint_every == 0
        self._was_intervened = transition.intervened and not (transition.terminated or transition.truncated)
        if due:
            self.checkpoint()

    # --- updates ----------------------------------------------------------------------

    def _train(self) -> None:
        batch_size = self.agent.config.utd_ratio * self.agent.config.batch_size
        updates_owed_from = self.env_steps  # only data that arrives while we run earns updates
        while not self._stop.is_set():
            with self._data_lock:
                ready = len(self.online) >= self.loop.learning_starts
                owed = self.env_steps - updates_owed_from - self.updates
                if ready and owed > 0:
                    use_demos = len(self.demos) > 0 and self.loop.demo_fraction > 0
                    sampler = (
                        MixedSampler([self.online, self.demos], [1 - self.loop.demo_fraction, self.loop.demo_fraction])
                        if use_demos
                        else MixedSampler([self.online])
                    )
                    batch = sampler.sample(batch_size, self.rng, minibatches=self.agent.config.utd_ratio)
            if not ready:
                updates_owed_from = self.env_steps
            if not (ready and owed > 0):
                time.sleep(0.002)
                continue
            start = time.perf_counter()
            with self._agent_lock:
                self.agent.update(batch)
            self.update_seconds += time.perf_counter() - start
            self.updates += 1
            if self.updates % self.publish_every == 0:
                self._publish_weights()

    def _publish_weights(self) -> None:
        with self._agent_lock:
            weights = {k: v.detach().cpu().numpy().copy() for k, v in self.agent.state_dict().items()}
            config = self.agent.config_json()
            version = int(self.agent.critic_updates)
        self.weights_pub.publish(messages.weights_msg(weights, version, config))

    # --- persistence ------------------------------------------------------------------

    def checkpoint(self) -> Path:
        """Agent (weights, optimisers, RNG, counters) and both buffers into the run directory."""
        with self._agent_lock, self._data_lock:
            # Buffers first, the agent last: a checkpoint whose config.json exists has its buffers.
            save_replay(self.online, self.run_dir / ONLINE, source="hil", fps=self.rig.arm.control_rate_hz)
            save_replay(self.demos, self.run_dir / DEMOS, source="hil", fps=self.rig.arm.control_rate_hz)
            steering = {CONFIG_KEY: self.steering.to_json()} if self.steering is not None else None
            return self.agent.save(self.run_dir / CHECKPOINT, extra_meta={ENV_STEPS: self.env_steps},
                                   extra_config=steering)

    def stats(self) -> dict[str, float]:
        return {
            "env_steps": self.env_steps,
            "updates": self.updates,
            "critic_updates": int(self.agent.critic_updates),
            "updates_per_s": self.updates / self.update_seconds if self.update_seconds else 0.0,
            "online_transitions": len(self.online),
            "demo_transitions": len(self.demos),
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
        """Stop updating, checkpoint, and leave the run's figures in learner_stats.json."""
        self._stop.set()
        self._thread.join(timeout=10.0)
        self.checkpoint()
        (self.run_dir / STATS).write_text(json.dumps(self.stats(), indent=2))
