"""Recorder node: every episode the actor runs, into the zarr episode store.

It writes the transition stream frame by frame (observations, executed and proposed actions,
rewards, intervened flags, acquisition times) and commits an episode when its last
transition arrives; an episode the operator asked to re-record is discarded, and one still
open at shutdown is discarded too (a store never holds half an episode). When the store cannot be
written (a full disk), the episode under way is dropped, the committed ones stay as they are, and
the recorder stops: `failed` holds the one-line error for whoever runs the graph to raise.
"""

from __future__ import annotations

import threading
from pathlib import Path

import gymnasium as gym
import numpy as np
from rclpy.node import Node
from std_msgs.msg import UInt8MultiArray

from tether.actions import ActionScale
from tether.config import RigConfig
from tether.datasets.store import EpisodeWriter, StoreError, StoreSpec, StoreWriteError
from tether.robot_ws import messages, qos
from tether.types import Observation


def _space_of(obs: Observation) -> gym.spaces.Dict:
    boxes = {}
    for key, value in obs.items():
        if value.dtype == np.uint8:
            boxes[key] = gym.spaces.Box(0, 255, value.shape, np.uint8)
        else:
            boxes[key] = gym.spaces.Box(-np.inf, np.inf, value.shape, np.float32)
    return gym.spaces.Dict(boxes)


class RecorderNode(Node):
    def __init__(self, rig: RigConfig, store: Path, source: str, task: str, **node_kwargs) -> None:
        super().__init__("recorder", namespace=rig.namespace, **node_kwargs)
        self.rig = rig
        self.store = Path(store)
        self.source = source
        self.task = task
        self.writer: EpisodeWriter | None = None
        self.committed = 0
        self.discarded = 0
        self.rejected = 0
        self._episode: int | None = None
        self._lock = threading.Lock()  # the subscription and close() run on different threads
        self._closed = False
        self.failed: StoreWriteError | None = None  # set when writing failed; the recorder then stops
        self.create_subscription(UInt8MultiArray, "learner/transitions", self._on_transition, qos.STREAM)

    def _open(self, obs: Observation) -> EpisodeWriter:
        space = _space_of(obs)
        if (self.store / "zarr.json").exists():
            return EpisodeWriter.open(self.store, space, ActionScale.of_rig(self.rig).dim)
        return EpisodeWriter.create(
            self.store, space, ActionScale.of_rig(self.rig).dim, fps=self.rig.arm.control_rate_hz, rig=self.rig
        )

    def _on_transition(self, msg: UInt8MultiArray) -> None:
        transition, header = messages.transition_from_msg(msg)
        with self._lock:
            if self._closed:
                return
            try:
                self._write(transition, header)
            except StoreError as error:  # e.g. another graph on this ROS domain: refuse it, keep recording
                self.rejected += 1
                self.get_logger().error(f"transition refused: {error}", throttle_duration_sec=5.0)
            except OSError as error:  # the disk is full or gone: nothing more can be recorded
                self._fail(error)

    def _fail(self, error: OSError) -> None:
        """Stop recording after a write failed: drop the open episode, release the store, keep the reason."""
        self._closed = True
        try:
            self._close_writer()
        except OSError:
            self.writer = None  # the discard itself could not be written: the frames stay an uncommitted tail
        reason = error.strerror or str(error)
        self.failed = StoreWriteError(
            f"{self.store}: recording stopped, writing failed ({reason}); the episode under way was dropped,"
            f" the {self.committed} committed episode(s) are intact"
        )
        self.get_logger().error(str(self.failed))

    def _write(self, transition, header: dict) -> None:
        if self.writer is None:
            self.writer = self._open(transition.obs)
        # Checked before any episode bookkeeping, so a stray transition cannot end or begin an episode.
        differences = self.writer.spec.differences(StoreSpec.from_space(_space_of(transition.obs), ActionScale.of_rig(self.rig).dim))
        if differences:
            raise StoreError(f"{self.store}: the transition's spec differs: {'; '.join(differences)}")
        if header["episode"] != self._episode:
            if self._episode is not None and self.writer.steps_in_episode:
                self.writer.discard_episode()  # the previous one never ended: a lost tail
                self.discarded += 1
            self.writer.begin_episode(source=self.source, task=self.task, seed=header["episode"])
            self._episode = header["episode"]
        self.writer.add_step(
            transition.obs, transition.action, transition.reward, transition.terminated, transition.truncated,
            transition.intervened, policy_action=transition.policy_action, timestamp=header["stamp"],
        )
        outcome = header["outcome"]
        if outcome == "rerecord":
            self.writer.discard_episode()
            self.discarded += 1
            self._episode = None
        elif outcome:
            self.writer.end_episode(success=outcome == "success", final_obs=transition.next_obs)
            self.committed += 1
            self._episode = None

    def close(self) -> None:
        """Discard the open episode (if any) and close the store; later transitions are ignored."""
        with self._lock:
            self._closed = True
            self._close_writer()

    def _close_writer(self) -> None:
        if self.writer is None:
            return
        if self._episode is not None and self.writer.steps_in_episode:
            self.writer.discard_episode()
            self.discarded += 1
        self.writer.close()
        self.writer = None
