"""The arm node is the last line of safety, whatever sends it commands.

The backend is the real twin arm, wrapped in a spy that records what reaches it.
"""

import time

import numpy as np
import pytest
from geometry_msgs.msg import TwistStamped
from std_msgs.msg import Bool

from tether.config import load_rig
from tether.robot_ws import messages, qos
from tether.robot_ws.nodes.arm import ArmNode
from tether.robot_ws.twin_backend import TwinArm, TwinWorld
from tether.safety import MAX_LEAD_STEPS


class SpyArm(TwinArm):
    """The twin arm, recording every target it is given and the measured pose at that moment."""

    def __init__(self, world):
        super().__init__(world)
        self.targets: list[tuple[np.ndarray, np.ndarray]] = []
        self.holds = 0

    def move_toward(self, position, quat_xyzw):
        self.targets.append((np.array(position), self.state().tcp_pose[:3].copy()))
        super().move_toward(position, quat_xyzw)

    def hold(self):
        self.holds += 1
        super().hold()


@pytest.fixture
def arm_graph(ros):
    rig = load_rig("twin_panda")
    world = TwinWorld(rig.model_copy(update={"cameras": []}), "pick_cube")
    world.start()
    spy = SpyArm(world)
    arm = ros.add(ArmNode(rig, spy, context=ros.context))
    test = ros.node("fuzzer", rig.namespace)
    cmd = test.create_publisher(TwistStamped, "arm/cmd", qos.COMMAND)
    estop = test.create_publisher(Bool, "estop", qos.LATCHED)
    ros.start()
    yield rig, arm, spy, test, cmd, estop
    world.stop()


def send(test, publisher, velocity, age_s: float = 0.0):
    now = test.get_clock().now().nanoseconds * 1e-9
    publisher.publish(messages.twist_msg(np.asarray(velocity, float), now - age_s))


def test_fuzzed_commands_never_leave_the_box_or_speed_limit(arm_graph, wait_for):
    rig, arm, spy, test, cmd, _ = arm_graph
    rng = np.random.default_rng(0)
    for i in range(150):
        kind = i % 5
        if kind == 0:
            velocity = rng.normal(0, 5.0, 6)
        elif kind == 1:
            velocity = rng.normal(0, 1e6, 6)
        elif kind == 2:
            velocity = np.where(rng.random(6) < 0.5, np.nan, 1.0)
        elif kind == 3:
            velocity = np.array([np.inf, 0, 0, 0, 0, 0])
        else:
            velocity = rng.uniform(-1, 1, 6)
        send(test, cmd, velocity)
        time.sleep(0.02)
    assert wait_for(lambda: arm.counters["accepted"] >= 60)
    assert arm.counters["rejected_non_finite"] >= 40
    low, high = np.array(rig.arm.workspace.low), np.array(rig.arm.workspace.high)
    reach = (MAX_LEAD_STEPS + 1e-6) * rig.arm.max_linear_speed * rig.control_dt
    assert len(spy.targets) >= 60
    for target, measured in spy.targets:
        assert np.all(np.isfinite(target))
        assert np.all(target >= low - 1e-9) and np.all(target <= high + 1e-9)
        assert np.linalg.norm(target - measured) <= reach + 0.005  # + the motion between the two reads


def test_stale_commands_are_rejected(arm_graph, wait_for):
    _, arm, spy, test, cmd, _ = arm_graph
    send(test, cmd, [0.1, 0, 0, 0, 0, 0], age_s=5.0)
    assert wait_for(lambda: arm.counters["rejected_stale"] == 1)
    assert spy.targets == []


def test_watchdog_holds_when_commands_stop(arm_graph, wait_for):
    rig, arm, spy, test, cmd, _ = arm_graph
    for _ in range(5):
        send(test, cmd, [0.1, 0, 0, 0, 0, 0])
        time.sleep(0.05)
    assert wait_for(lambda: arm.counters["accepted"] == 5)
    holds_before = spy.holds
    assert wait_for(lambda: arm.counters["watchdog_hold"] == 1, timeout_s=rig.safety.watchdog_s + 2)
    assert wait_for(lambda: spy.holds > holds_before)  # the hold reaches the backend after the count
    time.sleep(rig.safety.watchdog_s * 2)
    assert arm.counters["watchdog_hold"] == 1  # holds once, not every tick


def test_estop_latches_until_released(arm_graph, wait_for):
    _, arm, spy, test, cmd, estop = arm_graph
    estop.publish(Bool(data=True))
    assert wait_for(lambda: arm.counters["estop"] == 1)
    for _ in range(5):
        send(test, cmd, [0.1, 0, 0, 0, 0, 0])
        time.sleep(0.03)
    assert wait_for(lambda: arm.counters["rejected_estop"] >= 5)
    assert spy.targets == []
    estop.publish(Bool(data=False))
    time.sleep(0.2)
    send(test, cmd, [0.1, 0, 0, 0, 0, 0])
    assert wait_for(lambda: arm.counters["accepted"] == 1)
    assert len(spy.targets) == 1
