"""The rig's network section: closed to other hosts by default, opened only by the rig.

The reachability test runs real rclpy processes on two hosts made of Linux network namespaces
joined by a veth pair (this machine runs tests as root); they are deleted afterwards. The remote
side uses UDP only (FASTDDS_BUILTIN_TRANSPORTS=UDPv4): namespaces share /dev/shm, which a real
second host does not, so shared memory must not short-cut the network.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import rclpy

from tether.config import NetworkConfig
from tether.robot_ws.network import (
    BUILTIN_TRANSPORTS,
    DOMAIN,
    LOOPBACK_PROFILE,
    PEERS,
    PROFILES,
    RANGE,
    SECURITY_ENABLE,
    SECURITY_KEYSTORE,
    SECURITY_STRATEGY,
    NetworkError,
    init_context,
    ros_environment,
)

ROS_VARIABLES = (RANGE, PEERS, DOMAIN, PROFILES, BUILTIN_TRANSPORTS, SECURITY_ENABLE, SECURITY_KEYSTORE,
                 SECURITY_STRATEGY)

# One participant on `arm/cmd`. argv: role (sub|pub), how it joins (a NetworkConfig as JSON, or "bare":
# plain rclpy.init with the environment as given), seconds. A subscriber prints how many messages it got.
PEER = """
import json, sys, time
import rclpy
from geometry_msgs.msg import TwistStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from tether.config import NetworkConfig
from tether.robot_ws.network import init_context

role, how, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
context = rclpy.Context()
if how == "bare":
    rclpy.init(context=context)
else:
    init_context(context, NetworkConfig.model_validate_json(how), "/tether/" + role)
node = Node("peer_" + role, context=context)
got = []
if role == "sub":
    node.create_subscription(TwistStamped, "arm/cmd", got.append, 10)
else:
    publisher = node.create_publisher(TwistStamped, "arm/cmd", 10)
executor = SingleThreadedExecutor(context=context)
executor.add_node(node)
print("ready", flush=True)
end = time.monotonic() + seconds
while time.monotonic() < end and len(got) < 5:
    if role == "pub":
        publisher.publish(TwistStamped())
    executor.spin_once(timeout_sec=0.05)
print(len(got), flush=True)
"""


@pytest.fixture
def ros_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """init_context sets these in the process environment; monkeypatch puts them back afterwards."""
    for name in ROS_VARIABLES:
        monkeypatch.delenv(name, raising=False)


class TwoHosts:
    """Two network namespaces `a` (10.211.<n>.1) and `b` (10.211.<n>.2) on one /24 over a veth pair."""

    def __init__(self) -> None:
        tag = os.getpid() % 10_000
        self.a, self.b, self.subnet = f"tta{tag}", f"ttb{tag}", f"10.211.{tag % 250}"
        self.address_a = f"{self.subnet}.1"
        commands = [
            f"netns add {self.a}", f"netns add {self.b}",
            f"link add va{tag} netns {self.a} type veth peer name vb{tag} netns {self.b}",
            f"-n {self.a} addr add {self.address_a}/24 dev va{tag}",
            f"-n {self.b} addr add {self.subnet}.2/24 dev vb{tag}",
        ]
        for ns, dev in ((self.a, f"va{tag}"), (self.b, f"vb{tag}")):
            commands += [f"-n {ns} link set lo up", f"-n {ns} link set {dev} up",
                         f"-n {ns} route add 224.0.0.0/4 dev {dev}"]
        try:
            for command in commands:
                subprocess.run(["ip", *command.split()], check=True, capture_output=True, timeout=10)
        except BaseException:
            self.delete()
            raise

    def start(self, ns: str, role: str, how: str, env: dict[str, str], seconds: float) -> subprocess.Popen:
        process = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", PEER, role, how, str(seconds)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert process.stdout.readline().strip() == "ready"
        return process

    def delete(self) -> None:
        for ns in (self.a, self.b):  # deleting a namespace deletes its end of the veth pair, and so the pair
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=10)


@pytest.fixture
def two_hosts() -> Iterator[TwoHosts]:
    hosts = TwoHosts()
    yield hosts
    hosts.delete()


def test_a_closed_graph_is_unreachable_from_another_host_and_a_subnet_graph_is_reachable(two_hosts, ros_domain):
    base = {k: v for k, v in os.environ.items() if k not in ROS_VARIABLES}
    remote = base | {BUILTIN_TRANSPORTS: "UDPv4"}
    attacker = NetworkConfig(discovery="subnet", static_peers=[two_hosts.address_a]).model_dump_json()
    subnet = NetworkConfig(discovery="subnet").model_dump_json()
    cases = {  # name: (subscriber on host a: how, env), publisher on host b: how, messages expected
        # the default rig; the publisher knows host a's address and names it as a static peer
        "closed": ((NetworkConfig().model_dump_json(), base), attacker, False),
        # what ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST alone does: the same publisher gets in
        "range only": (("bare", base | {RANGE: "LOCALHOST"}), attacker, True),
        # a multi-host rig: both sides on discovery subnet, no peers named
        "subnet": ((subnet, remote), subnet, True),
    }
    subscribers, publishers = {}, []
    for offset, (name, ((how, env), pub_how, _)) in enumerate(cases.items()):
        domain = {DOMAIN: str((ros_domain + 100 + offset) % 232)}
        subscribers[name] = two_hosts.start(two_hosts.a, "sub", how, env | domain, seconds=12)
        publishers.append(two_hosts.start(two_hosts.b, "pub", pub_how, remote | domain, seconds=14))
    received = {name: int(process.communicate(timeout=60)[0]) for name, process in subscribers.items()}
    for process in publishers:
        process.kill()
        process.wait(timeout=10)
    assert received == {name: 5 if expected else 0 for name, (_, _, expected) in cases.items()}


def test_the_default_rig_closes_the_graph_to_the_network():
    env = ros_environment(NetworkConfig(), {})
    assert env.variables == {RANGE: "LOCALHOST", PEERS: None, PROFILES: LOOPBACK_PROFILE, BUILTIN_TRANSPORTS: None,
                             DOMAIN: None}
    assert env.warnings == []
    opened = ros_environment(NetworkConfig(discovery="subnet", static_peers=["10.0.0.2"], domain_id=7), {})
    assert opened.variables == {RANGE: "SUBNET", PEERS: "10.0.0.2", DOMAIN: "7"}


@pytest.mark.parametrize(
    ("rig", "user", "expected", "warned"),
    [
        ({"discovery": "subnet"}, {RANGE: "LOCALHOST"}, {RANGE: "LOCALHOST", PROFILES: LOOPBACK_PROFILE}, ""),
        ({"discovery": "localhost"}, {RANGE: "OFF"}, {RANGE: "OFF"}, ""),
        ({"discovery": "localhost"}, {RANGE: "SUBNET"}, {RANGE: "LOCALHOST"}, "wider than the rig's"),
        ({"discovery": "off"}, {RANGE: "SYSTEM_DEFAULT"}, {RANGE: "OFF"}, "wider than the rig's"),
        ({"static_peers": ["a", "b"]}, {PEERS: "b"}, {PEERS: "b"}, ""),
        ({"static_peers": ["a"]}, {PEERS: "a;evil"}, {PEERS: "a"}, "evil not in the rig's"),
        ({}, {PEERS: "evil"}, {PEERS: None, PROFILES: LOOPBACK_PROFILE}, "evil not in the rig's"),
        ({}, {PROFILES: "/mine.xml", BUILTIN_TRANSPORTS: "UDPv4"}, {PROFILES: LOOPBACK_PROFILE, BUILTIN_TRANSPORTS: None},
         "closed to the network"),
        ({"discovery": "subnet"}, {PROFILES: "/mine.xml"}, {PROFILES: None}, ""),  # left as the user set it
        ({"discovery": "subnet"}, {PROFILES: LOOPBACK_PROFILE}, {PROFILES: None}, ""),  # a closed parent's
        ({"domain_id": 3}, {DOMAIN: "5"}, {DOMAIN: "5"}, "overrides the rig's network.domain_id 3"),
        ({}, {DOMAIN: "5"}, {DOMAIN: "5"}, ""),
    ],
)
def test_the_user_environment_narrows_the_rig_never_widens_it(rig, user, expected, warned):
    env = ros_environment(NetworkConfig.model_validate(rig), user)
    for name, value in expected.items():
        assert env.variables.get(name) == value, name
    assert (warned in " ".join(env.warnings)) if warned else env.warnings == []


def test_a_rig_that_enables_security_keeps_it_on_whatever_the_environment_says(tmp_path):
    rig = NetworkConfig(discovery="subnet", security={"enabled": True, "keystore": tmp_path})
    env = ros_environment(rig, {SECURITY_ENABLE: "false", SECURITY_STRATEGY: "Permissive", SECURITY_KEYSTORE: "/x"})
    assert {name: env.variables[name] for name in (SECURITY_ENABLE, SECURITY_STRATEGY, SECURITY_KEYSTORE)} == {
        SECURITY_ENABLE: "true", SECURITY_STRATEGY: "Enforce", SECURITY_KEYSTORE: str(tmp_path)}
    assert len(env.warnings) == 2
    permissive = NetworkConfig(security={"enabled": True, "keystore": tmp_path, "enforce": False})
    assert ros_environment(permissive, {}).variables[SECURITY_STRATEGY] == "Permissive"
    assert ros_environment(permissive, {SECURITY_STRATEGY: "Enforce"}).variables[SECURITY_STRATEGY] == "Enforce"


def test_an_unknown_discovery_range_in_the_environment_is_one_line():
    with pytest.raises(NetworkError, match=r"^ROS_AUTOMATIC_DISCOVERY_RANGE='WORLD': not one of OFF, LOCALHOST"):
        ros_environment(NetworkConfig(), {RANGE: "WORLD"})


def test_contexts_of_one_process_are_all_closed_or_all_open(ros_variables, monkeypatch):
    closed = rclpy.Context()
    init_context(closed, NetworkConfig(), "/tether/test")
    assert (os.environ[RANGE], os.environ[PROFILES]) == ("LOCALHOST", LOOPBACK_PROFILE)
    rclpy.utilities.try_shutdown(context=closed)
    monkeypatch.delenv(RANGE)  # else the range the closed graph set narrows the next one
    with pytest.raises(NetworkError, match="already runs a graph closed to the network"):
        init_context(rclpy.Context(), NetworkConfig(discovery="subnet"), "/tether/test")
