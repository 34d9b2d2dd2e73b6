"""E-stop always wins: served on its own thread during a home, latched even when the hold fails,
and a release replays nothing (arm or gripper). The backend is the real twin arm; speeds and
displacements are judged on the twin's measured motion."""

import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from std_msgs.msg import Bool, Float32
from std_srvs.srv import Trigger

from tether.config import load_rig
from tether.robot_ws import qos
from tether.robot_ws.interfaces import DeviceError
from tether.robot_ws.nodes.arm import ArmNode
from tether.robot_ws.twin_backend import TwinWorld

from .test_arm import SpyArm, flood, send

HOME_S = 5.0


class SlowHomeArm(SpyArm):
    """The twin's home is a scene reset of a few ms; this one first takes `HOME_S` as a real arm's
    homing motion does (waiting on the abort event it is given, as the Franka backend polls it)."""

    def __init__(self, world):
        super().__init__(world)
        self.home_started = threading.Event()
        self.home_completed = False

    def home(self, abort=None):
        self.home_started.set()
        if abort.wait(HOME_S):
            raise DeviceError("twin: home interrupted by e-stop")
        super().home(abort)
        self.home_completed = True


class FailingHoldArm(SpyArm):
    """A backend whose hold raises, as a driver that lost its connection would."""

    def hold(self):
        self.holds += 1
        raise DeviceError("twin: hold failed (connection lost)")


def graph(ros, rig, backend):
    arm = ros.add(ArmNode(rig, backend, context=ros.context))
    test = ros.node("operator", rig.namespace)
    pubs = {
        "cmd": test.create_publisher(TwistStamped, "arm/cmd", qos.COMMAND),
        "gripper": test.create_publisher(Float32, "gripper/cmd", qos.COMMAND),
        "estop": test.create_publisher(Bool, "estop", qos.LATCHED),
    }
    return arm, test, pubs


@pytest.fixture
def twin(ros):
    rig = load_rig("twin_panda")
    world = TwinWorld(rig.model_copy(update={"cameras": []}), "pick_cube")
    world.start()
    yield rig, world
    world.stop()


def test_estop_during_a_home_interrupts_it_and_holds(ros, twin, wait_for):
    rig, world = twin
    backend = SlowHomeArm(world)
    arm, test, pubs = graph(ros, rig, backend)
    client = test.create_client(Trigger, "arm/home")
    ros.start()
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(Trigger.Request())
    assert backend.home_started.wait(10)
    holds = backend.holds
    pubs["estop"].publish(Bool(data=True))  # the arm node's own executor is busy with the home
    assert wait_for(lambda: future.done(), timeout_s=HOME_S / 2)
    assert not future.result().success and "e-stop" in future.result().message
    assert not backend.home_completed and arm.estopped
    assert wait_for(lambda: backend.holds > holds)
    for _ in range(3):  # and nothing moves it until released
        send(test, pubs["cmd"], [0.1, 0, 0, 0, 0, 0])
        time.sleep(0.05)
    assert wait_for(lambda: arm.counters["rejected_estop"] >= 3)
    assert backend.targets == []
    again = client.call_async(Trigger.Request())
    assert wait_for(lambda: again.done()) and again.result().message == "e-stop is engaged"


def test_estop_stays_latched_when_the_hold_raises(ros, twin, wait_for):
    rig, world = twin
    backend = FailingHoldArm(world)
    arm, test, pubs = graph(ros, rig, backend)
    diagnostics: list[DiagnosticArray] = []
    test.create_subscription(DiagnosticArray, "diagnostics", diagnostics.append, qos.COMMAND)
    ros.start()
    pubs["estop"].publish(Bool(data=True))
    assert wait_for(lambda: arm.counters["estop_hold_failed"] == 1)
    assert arm.estopped and backend.holds == 1
    send(test, pubs["cmd"], [0.1, 0, 0, 0, 0, 0])
    pubs["gripper"].publish(Float32(data=1.0))
    assert wait_for(lambda: arm.counters["rejected_estop"] >= 2)
    assert backend.targets == []
    assert wait_for(lambda: any("hold failed" in d.status[0].message for d in diagnostics), timeout_s=5)
    status = next(d.status[0] for d in diagnostics if "hold failed" in d.status[0].message)
    assert status.message.startswith("e-stop engaged") and "connection lost" in status.message


def test_after_a_release_nothing_moves_until_a_new_command(ros, twin, wait_for):
    rig, world = twin
    backend = SpyArm(world)
    arm, test, pubs = graph(ros, rig, backend)
    ros.start()
    flood(test, pubs["cmd"], [rig.arm.max_linear_speed, 0, 0, 0, 0, 0], rate_hz=100, duration_s=0.6)
    pubs["estop"].publish(Bool(data=True))  # while the arm moves at its limit, its target ahead of it
    assert wait_for(lambda: arm.estopped)
    pubs["gripper"].publish(Float32(data=1.0))  # rejected, and must not come back at the release
    assert wait_for(lambda: arm.counters["rejected_estop"] == 1)
    time.sleep(0.6)  # the arm comes to rest
    rest, opening = backend.state().tcp_pose[:3], backend.state().gripper
    pubs["estop"].publish(Bool(data=False))
    assert wait_for(lambda: not arm.estopped)
    time.sleep(0.6)
    state = backend.state()
    assert np.linalg.norm(state.tcp_pose[:3] - rest) < 0.002 and abs(state.gripper - opening) < 0.02
    applied = arm.counters["applied"]
    pubs["gripper"].publish(Float32(data=1.0))  # a new gripper command moves the gripper only
    assert wait_for(lambda: backend.state().gripper < opening - 0.2)
    time.sleep(0.3)
    assert np.linalg.norm(backend.state().tcp_pose[:3] - rest) < 0.002 and arm.counters["applied"] == applied
    send(test, pubs["cmd"], [0, 0.1, 0, 0, 0, 0])  # a new arm command: one step from where the arm is
    assert wait_for(lambda: arm.counters["applied"] == applied + 1)
    np.testing.assert_allclose(backend.targets[-1][0], rest + [0, 0.1 * rig.control_dt, 0], atol=0.002)
