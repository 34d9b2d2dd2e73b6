"""Per-node executors: a node's companions spin on threads of their own."""

import threading

import rclpy
from std_msgs.msg import Bool

from tether.robot_ws import qos
from tether.robot_ws.spinning import NodeSpinners


def test_a_companion_is_served_while_its_node_is_busy():
    context = rclpy.Context()
    rclpy.init(context=context)
    busy, release, heard = threading.Event(), threading.Event(), threading.Event()

    def block() -> None:
        busy.set()
        release.wait(10)

    main = rclpy.create_node("main", context=context)
    main.create_timer(0.01, block)  # the main node's one thread is held here
    companion = rclpy.create_node("main_companion", context=context)
    companion.create_subscription(Bool, "ping", lambda _: heard.set(), qos.LATCHED)
    main.companions = (companion,)
    sender = rclpy.create_node("sender", context=context)
    spinners = NodeSpinners(context)
    for node in (main, sender):
        spinners.add(node)
    spinners.start()
    try:
        assert busy.wait(10)
        sender.create_publisher(Bool, "ping", qos.LATCHED).publish(Bool(data=True))
        assert heard.wait(10)  # while main is still blocked
        assert not release.is_set()
    finally:
        release.set()
        spinners.shutdown()
        for node in (main, companion, sender):
            node.destroy_node()
