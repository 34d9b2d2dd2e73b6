"""Twin node: runs the twin world and publishes what only a twin knows.

It publishes /clock when the graph runs on sim time, and the privileged task state
(`twin/task_state`, object poses, for state-only policies) and task success
(`twin/success`, the twin's stand-in for an operator pressing the success key).
The arm and camera nodes reach the same world through `TwinArm` and `TwinCamera`.
"""

from __future__ import annotations

from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Bool, Float32MultiArray

from tether.robot_ws import messages, qos
from tether.robot_ws.twin_backend import TwinWorld

TASK_STATE_PERIOD_S = 0.02


class TwinNode(Node):
    def __init__(self, world: TwinWorld, **node_kwargs) -> None:
        super().__init__("twin", namespace=world.rig.namespace, **node_kwargs)
        self.world = world
        self.clock_pub = self.create_publisher(Clock, "/clock", qos.COMMAND) if world.sim_time_mode else None
        self.state_pub = self.create_publisher(Float32MultiArray, "twin/task_state", qos.SENSOR)
        self.success_pub = self.create_publisher(Bool, "twin/success", qos.SENSOR)
        self._next_state = 0.0
        world.on_tick.append(self._on_tick)

    def _on_tick(self, now: float) -> None:
        """Runs on the physics thread after each chunk."""
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=messages.to_stamp(now)))
        if now < self._next_state:
            return
        self._next_state = now + TASK_STATE_PERIOD_S
        with self.world.lock:
            state = self.world.sim.task_state()
            success = self.world.sim.score().success
        self.state_pub.publish(messages.task_state_msg(state))
        self.success_pub.publish(Bool(data=bool(success)))

    def destroy_node(self) -> None:
        if self._on_tick in self.world.on_tick:
            self.world.on_tick.remove(self._on_tick)
        super().destroy_node()

