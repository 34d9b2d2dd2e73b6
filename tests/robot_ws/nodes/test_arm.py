"""The arm node is the last line of safety, whatever sends it commands.

The backend is the real twin arm, wrapped in a spy that records what reaches it; speeds are
judged on the twin's measured TCP motion.
"""

import threading
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from geometry_msgs.msg import TwistStamped
from std_msgs.msg import Bool

from tether.config import load_rig
from tether.robot_ws import messages, qos
from tether.robot_ws.nodes.arm import ArmNode
from tether.robot_ws.twin_backend import TcpTrace, TwinArm, TwinWorld
from tether.safety import MAX_LEAD_STEPS


class SpyArm(TwinArm):
    """The twin arm, recording every target it is given and the measured pose at that moment."""

    def __init__(self, world):
        super().__init__(world)
        self.targets: list[tuple[np.ndarray, np.ndarray]] = []
        self.quats: list[np.ndarray] = []
        self.holds = 0

    def move_toward(self, position, quat_xyzw):
        self.targets.append((np.array(position), self.state().tcp_pose[:3].copy()))
        self.quats.append(np.array(quat_xyzw))
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
    max_step = rig.arm.max_linear_speed * rig.control_dt
    reach = (MAX_LEAD_STEPS + 1e-6) * max_step
    assert len(spy.targets) >= 15  # about one setpoint per control period of the 3 s stream
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


def flood(test, publisher, velocity, rate_hz: float, duration_s: float) -> int:
    """Publish `velocity` at `rate_hz` from this thread for `duration_s`; returns how many were sent."""
    sent, period = 0, 1.0 / rate_hz
    deadline = time.monotonic() + duration_s
    next_send = time.monotonic()
    while time.monotonic() < deadline:
        send(test, publisher, velocity)
        sent += 1
        next_send += period
        time.sleep(max(0.0, next_send - time.monotonic()))
    return sent


def test_a_1khz_stream_of_in_limit_commands_moves_the_arm_no_faster_than_the_limit(arm_graph, wait_for):
    rig, arm, spy, test, cmd, _ = arm_graph
    trace = TcpTrace(spy.world)
    limit = rig.arm.max_linear_speed
    start = trace.clock()
    sent = flood(test, cmd, [limit, 0, 0, 0, 0, 0], rate_hz=1000, duration_s=1.2)
    end = trace.clock()
    time.sleep(0.3)
    trace.close()
    assert sent > 500 and arm.counters["accepted"] > 100  # the node took in a flood (depth 1: it may drop some)
    assert arm.counters["applied"] < arm.counters["accepted"] / 5  # merged, about one per control period
    moved = [p for t, p in trace.samples if start <= t <= end]
    mean_speed = np.linalg.norm(moved[-1] - moved[0]) / (end - start)
    assert 0.5 * limit < mean_speed <= 1.1 * limit  # it followed the stream at the limit, not faster
    # Over single control periods the twin's arm overshoots the limit a little when its physics thread is
    # starved on a loaded machine (benchmarks/safety.py measures it); applying every message would triple it.
    assert trace.max_speed(rig.control_dt, start=start) <= 1.25 * limit


def test_a_10hz_stream_moves_its_velocity_times_the_period_every_tick(arm_graph, wait_for):
    rig, arm, spy, test, cmd, _ = arm_graph
    velocity = np.array([0.1, 0.05, 0, 0, 0, 0])
    flood(test, cmd, velocity, rate_hz=rig.arm.control_rate_hz, duration_s=1.0)
    assert wait_for(lambda: arm.counters["accepted"] >= 9)
    targets = [target for target, _ in spy.targets]
    assert len(targets) >= arm.counters["accepted"] - 1  # (nearly) every command became a setpoint
    steps = np.diff(targets, axis=0)
    np.testing.assert_allclose(np.median(steps, axis=0), velocity[:3] * rig.control_dt, atol=1e-9)


def test_rotations_are_ignored_when_the_rig_has_none(arm_graph, wait_for):
    rig, arm, spy, test, cmd, _ = arm_graph
    assert not rig.arm.rotation_actions
    before = spy.state().tcp_pose[3:]
    flood(test, cmd, [0.05, 0, 0, 0.8, -0.8, 0.8], rate_hz=rig.arm.control_rate_hz, duration_s=1.0)
    assert wait_for(lambda: len(spy.quats) >= 8)
    down = Rotation.from_quat(rig.arm.tcp_down_quat)
    for quat in spy.quats:  # the setpoint's orientation is the rig's "down" (the twin starts 2e-4 rad off it)
        assert (Rotation.from_quat(quat) * down.inv()).magnitude() < 1e-3
    turned = (Rotation.from_quat(spy.state().tcp_pose[3:]) * Rotation.from_quat(before).inv()).magnitude()
    assert turned < 0.01
