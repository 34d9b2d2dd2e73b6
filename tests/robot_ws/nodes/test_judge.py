"""The judge node hands episode events to its owner and publishes the owner's verdict as the task's success."""

from std_msgs.msg import Bool, String

from tether.config import load_rig
from tether.robot_ws import qos
from tether.robot_ws.nodes.judge import JudgeNode


def test_the_judge_forwards_events_and_announces_the_verdict_only_when_asked(ros, wait_for):
    rig = load_rig("franka_realsense")
    events: list[str] = []
    verdict = {"value": False}
    ros.add(JudgeNode(rig, events.append, lambda: verdict["value"], context=ros.context))
    ros.add(JudgeNode(rig, lambda _: None, lambda: True, announce=False, name="silent", context=ros.context))
    probe = ros.node("probe", rig.namespace)
    publish = probe.create_publisher(String, "episode/events", qos.EVENTS)
    successes: list[bool] = []
    probe.create_subscription(Bool, "twin/success", lambda msg: successes.append(msg.data), qos.SENSOR)
    ros.start()
    assert wait_for(lambda: len(successes) >= 10, timeout_s=10.0)
    assert not any(successes)  # the silent judge's True never reaches the topic
    publish.publish(String(data="reset"))
    assert wait_for(lambda: events == ["reset"], timeout_s=10.0)
    verdict["value"] = True
    assert wait_for(lambda: successes[-1], timeout_s=10.0)
