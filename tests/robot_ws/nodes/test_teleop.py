"""The teleop node with the keyboard device: real keys through Xvfb + xdotool become ROS messages."""

import numpy as np
from geometry_msgs.msg import TwistStamped
from std_msgs.msg import Bool, String

from tether.config import load_rig
from tether.robot_ws import messages, qos
from tether.robot_ws.nodes.teleop import TeleopNode
from tether.teleop.devices import make_teleop


def test_keyboard_keys_become_teleop_messages(ros, xvfb, wait_for):
    rig = load_rig("opencv_webcam")  # keyboard teleop, default key map (w = +x, enter = success)
    device = make_teleop(rig.teleop)
    device.connect()
    ros.add(TeleopNode(rig, device, context=ros.context))
    listener = ros.node("listener", rig.namespace)
    seen: dict[str, list] = {"cmd": [], "engaged": [], "events": []}
    listener.create_subscription(TwistStamped, "teleop/cmd", lambda m: seen["cmd"].append(messages.twist_array(m)), qos.COMMAND)
    listener.create_subscription(Bool, "teleop/engaged", lambda m: seen["engaged"].append(m.data), qos.COMMAND)
    listener.create_subscription(String, "episode/events", lambda m: seen["events"].append(m.data), qos.EVENTS)
    ros.start()
    try:
        assert wait_for(lambda: seen["engaged"] and not seen["engaged"][-1])
        xvfb.keys("keydown", "w")
        assert wait_for(lambda: seen["engaged"][-1] and seen["cmd"][-1][0] > 0)
        velocity = seen["cmd"][-1]
        expected = messages.action_to_velocity(np.array([rig.teleop.translation_scale, 0, 0, 0]), rig)
        np.testing.assert_allclose(velocity, expected, atol=1e-9)
        xvfb.keys("keyup", "w")
        assert wait_for(lambda: not seen["engaged"][-1] and not seen["cmd"][-1].any())
        xvfb.keys("key", "Return")
        assert wait_for(lambda: "success" in seen["events"])
    finally:
        device.close()
