"""Viewer node: what the actor sees and does, live in rerun (`--view` on record, train hil and deploy).

It listens to the actor's transition stream, which carries everything a person watching a run wants on one
timeline: every camera, the TCP pose and the rest of the observation, the executed action and the policy's own
proposal, whether a human intervened, and the reward. Entities are the observation keys (`images/front`,
`state/tcp_pose`, ...) plus `action`, `policy_action`, `intervened` and `reward`, on the timelines `step` (every
transition of the run) and `episode`. `target` is `spawn` (open a rerun viewer and stream to it) or a `.rrd`
path (save a recording to open later with `rerun FILE`).
"""

from __future__ import annotations

import numpy as np
from rclpy.node import Node
from std_msgs.msg import UInt8MultiArray

from tether.config import RigConfig
from tether.robot_ws import messages, qos
from tether.spaces import is_image_key

SPAWN = "spawn"


class ViewerNode(Node):
    def __init__(self, rig: RigConfig, target: str, **node_kwargs) -> None:
        super().__init__("viewer", namespace=rig.namespace, **node_kwargs)
        import rerun as rr

        self._rr = rr
        self.recording = rr.RecordingStream(f"tether/{rig.name}")
        if target == SPAWN:
            self.recording.spawn()
        else:
            self.recording.save(target)
        self.logged = 0
        self.create_subscription(UInt8MultiArray, "learner/transitions", self._on_transition, qos.STREAM)

    def _on_transition(self, msg: UInt8MultiArray) -> None:
        transition, header = messages.transition_from_msg(msg)
        rr, recording = self._rr, self.recording
        recording.set_time("step", sequence=self.logged)
        recording.set_time("episode", sequence=int(header["episode"]))
        for key, value in transition.obs.items():
            recording.log(key, rr.Image(value) if is_image_key(key) else rr.Scalars(np.asarray(value, np.float64)))
        scalars = {"action": transition.action, "intervened": float(transition.intervened),
                   "reward": transition.reward, "policy_action": transition.policy_action}
        for name, value in scalars.items():
            value = np.atleast_1d(np.asarray(value, np.float64)) if value is not None else np.full(1, np.nan)
            if np.isfinite(value).all():  # a step no policy proposed has no policy_action
                recording.log(name, rr.Scalars(value))
        self.logged += 1

    def destroy_node(self) -> None:
        self.recording.flush()
        super().destroy_node()
