"""The rig's `network:` section as the environment rcl reads when a ROS context starts.

A graph is closed by default: DDS discovery stays on this host (ROS_AUTOMATIC_DISCOVERY_RANGE
LOCALHOST) and, as that range alone only stops the graph announcing itself (a host that names
this one as a static peer still gets in), Fast DDS is given a profile with UDP on the loopback
interface and shared memory only (fastdds_loopback.xml). A rig opens the graph with
`discovery: subnet` or static peers. What the user exported may narrow what the rig says, never
widen it; a wider value is replaced by the rig's, with a warning:

- ROS_AUTOMATIC_DISCOVERY_RANGE: a narrower range (OFF < LOCALHOST < SUBNET) is kept.
- ROS_STATIC_PEERS: only the peers the rig also lists are kept.
- ROS_SECURITY_ENABLE / _STRATEGY / _KEYSTORE: the user may turn security on or make it Enforce;
  where the rig enables security, its keystore and strategy hold.
- FASTRTPS_DEFAULT_PROFILES_FILE / FASTDDS_BUILTIN_TRANSPORTS: replaced / unset on a closed graph.
- ROS_DOMAIN_ID separates graphs but is no boundary: the user's value wins (a warning says so
  when the rig names another one), which is how tests and the demo keep graphs apart on one host.

The variables are set in this process's environment before `rclpy.init` (rcl reads them there,
Fast DDS when the context's first node makes its participant), so child processes inherit them and
are at most as open as their parent.
Fast DDS reads its profile file once per process, so every context of a process must be equally
closed or open (else NetworkError).
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.node import Node

from tether.config import NetworkConfig
from tether.types import DeviceError

logger = logging.getLogger(__name__)

RANGE = "ROS_AUTOMATIC_DISCOVERY_RANGE"
PEERS = "ROS_STATIC_PEERS"
DOMAIN = "ROS_DOMAIN_ID"
SECURITY_ENABLE = "ROS_SECURITY_ENABLE"
SECURITY_STRATEGY = "ROS_SECURITY_STRATEGY"
SECURITY_KEYSTORE = "ROS_SECURITY_KEYSTORE"
PROFILES = "FASTRTPS_DEFAULT_PROFILES_FILE"
BUILTIN_TRANSPORTS = "FASTDDS_BUILTIN_TRANSPORTS"
LOOPBACK_PROFILE = str(importlib.resources.files("tether.robot_ws") / "fastdds_loopback.xml")

_WIDTH = {"OFF": 0, "LOCALHOST": 1, "SUBNET": 2, "SYSTEM_DEFAULT": 2}  # Fast DDS's system default is SUBNET


_closed_in_process: list[bool] = []  # whether this process's first context was closed (Fast DDS reads XML once)


class NetworkError(DeviceError):
    """This machine's ROS middleware cannot join the network the rig asks for (a missing keystore, no
    DDS security in the build); the message names the setting and the reason."""


@dataclass(frozen=True)
class RosEnvironment:
    """The variables a context starts with (None: unset) and the user settings they overrode."""

    variables: dict[str, str | None]
    warnings: list[str] = field(default_factory=list)


def enclave_of(nodes: Sequence[str]) -> str:
    """The security enclave of a process: `/tether/<node>` for one node, `/tether/graph` for several."""
    return f"/tether/{nodes[0]}" if len(nodes) == 1 else "/tether/graph"


def ros_environment(network: NetworkConfig, environ: Mapping[str, str]) -> RosEnvironment:
    """What rcl must read for `network`, given the user's `environ` (which may only narrow it)."""
    variables: dict[str, str | None] = {}
    overridden: list[str] = []

    rig_range = network.discovery.upper()
    user_range = environ.get(RANGE, "").strip().upper()
    if user_range and user_range not in _WIDTH:
        raise NetworkError(f"{RANGE}={environ[RANGE]!r}: not one of {', '.join(_WIDTH)}")
    if user_range and _WIDTH[user_range] > _WIDTH[rig_range]:
        overridden.append(f"{RANGE}={user_range} is wider than the rig's network.discovery; using {rig_range}")
        user_range = ""
    variables[RANGE] = user_range or rig_range

    user_peers = [p.strip() for p in environ.get(PEERS, "").split(";") if p.strip()]
    peers = [p for p in user_peers if p in network.static_peers] if user_peers else list(network.static_peers)
    dropped = [p for p in user_peers if p not in network.static_peers]
    if dropped:
        overridden.append(f"{PEERS}: {', '.join(dropped)} not in the rig's network.static_peers; left out")
    variables[PEERS] = ";".join(peers) or None

    if variables[RANGE] in ("OFF", "LOCALHOST") and not peers:
        if environ.get(PROFILES, LOOPBACK_PROFILE) != LOOPBACK_PROFILE or environ.get(BUILTIN_TRANSPORTS):
            overridden.append(f"{PROFILES} / {BUILTIN_TRANSPORTS} ignored: the rig's graph is closed to the network")
        variables |= {PROFILES: LOOPBACK_PROFILE, BUILTIN_TRANSPORTS: None}
    elif environ.get(PROFILES) == LOOPBACK_PROFILE:  # set by a closed graph this process came from
        variables[PROFILES] = None

    user_domain = environ.get(DOMAIN, "").strip()
    if user_domain and network.domain_id is not None and user_domain != str(network.domain_id):
        overridden.append(f"{DOMAIN}={user_domain} overrides the rig's network.domain_id {network.domain_id}")
    rig_domain = None if network.domain_id is None else str(network.domain_id)
    variables[DOMAIN] = user_domain or rig_domain

    security = network.security
    if security.enabled:
        if environ.get(SECURITY_ENABLE, "true").lower() != "true":
            overridden.append(f"{SECURITY_ENABLE}={environ[SECURITY_ENABLE]} ignored: the rig enables security")
        keystore = str(security.keystore)
        if environ.get(SECURITY_KEYSTORE, keystore) != keystore:
            overridden.append(f"{SECURITY_KEYSTORE} ignored: the rig's keystore is {keystore}")
        enforce = security.enforce or environ.get(SECURITY_STRATEGY) == "Enforce"
        variables |= {
            SECURITY_ENABLE: "true",
            SECURITY_KEYSTORE: keystore,
            SECURITY_STRATEGY: "Enforce" if enforce else "Permissive",
        }
    return RosEnvironment(variables, overridden)


def _set(variables: Mapping[str, str | None]) -> None:
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def new_context(network: NetworkConfig, enclave: str) -> rclpy.Context:
    """A fresh context, initialised on the rig's network by `init_context`."""
    context = rclpy.Context()
    init_context(context, network, enclave)
    return context


def init_context(context: rclpy.Context, network: NetworkConfig, enclave: str) -> None:
    """`rclpy.init` of `context` on the rig's network, as `enclave` where security is on.

    A secured context is checked at once by creating its DDS participant, so a middleware or
    keystore that cannot do security fails here with one line, not at the first node.
    """
    env = ros_environment(network, os.environ)
    for warning in env.warnings:
        logger.warning(warning)
    closed = env.variables.get(PROFILES) == LOOPBACK_PROFILE
    if _closed_in_process and _closed_in_process[0] != closed:
        was = "closed to the network" if _closed_in_process[0] else "open to the network"
        raise NetworkError(f"network: this process already runs a graph {was}, and Fast DDS sets its transports "
                           "once per process; run this rig in a process of its own")
    if network.security.enabled:
        _check_keystore(network, enclave)
    _set(env.variables)
    secured = os.environ.get(SECURITY_ENABLE, "").lower() == "true"
    try:
        rclpy.init(context=context, args=["--ros-args", "--enclave", enclave])
        _closed_in_process[:1] = [closed]
        if secured:
            with warnings.catch_warnings():  # a failed node warns that it could not clean up what it never made
                warnings.simplefilter("ignore", RuntimeWarning)
                Node("tether_security_check", context=context).destroy_node()
    except RCLError as error:
        rclpy.utilities.try_shutdown(context=context)
        reason = str(error).splitlines()[0].removeprefix("error creating node: ")
        what = "DDS security" if secured else "ROS 2"
        raise NetworkError(f"{what} (enclave {enclave}): {reason}") from None


def _check_keystore(network: NetworkConfig, enclave: str) -> None:
    keystore = network.security.keystore
    if keystore is None or not keystore.is_dir():
        raise NetworkError(f"network.security.keystore: {keystore} is not a directory")
    if not (keystore / "enclaves" / enclave.lstrip("/")).is_dir():
        raise NetworkError(f"network.security.keystore: {keystore} has no enclave {enclave}")
