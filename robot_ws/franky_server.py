"""franky-sim, a libfranka-protocol server with its own MuJoCo FR3, as the "real" Franka for tests and benchmarks.

The server runs in a subprocess on a loopback address of its own (the protocol fixes the ports, so
two servers need two addresses); `sim_rig` points a copy of a Franka rig at it. Nothing on the
tether side knows it is a simulator: the Franka backend speaks the real protocol to it.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import threading

from tether.config import RigConfig, load_rig

FRANKA_PORTS = (1337, 1338)  # robot and gripper; fixed by the protocol, so each server needs its own address
NO_REALTIME = ["setpriv", "--inh-caps", "-sys_nice", "--bounding-set", "-sys_nice", "--"]
"""Prefix for a command that drives the Franka backend next to franky-sim on the same cores. libfranka puts
the threads of a process that controls the arm under SCHED_FIFO at top priority whenever it may (as root);
its 1 kHz loop and the graph's threads then starve franky-sim, which falls behind real time, so states go
stale and the actor holds. Without CAP_SYS_NICE the attempt fails, which `realtime: false` tolerates."""


def free_loopback_address() -> str:
    """A 127.x.y.z address on which both Franka ports are free (other runs may hold some)."""
    for _ in range(100):
        address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"
        try:
            for port in FRANKA_PORTS:
                with socket.socket() as probe:
                    probe.bind((address, port))
        except OSError:
            continue
        return address
    raise RuntimeError("no free loopback address for franky-sim")


class SimServer:
    """franky-sim in a subprocess: `python -m franky_sim.run_server -s mujoco` on one address."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "franky_sim.run_server", "-s", "mujoco", "--hostname", self.address],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()
        lines: list[str] = []

        def watch() -> None:
            for line in self.process.stdout:
                lines.append(line)
                if "Connect to the server" in line:
                    ready.set()

        threading.Thread(target=watch, daemon=True).start()
        if not ready.wait(60):
            self.stop()
            raise RuntimeError("franky-sim did not start: " + "".join(lines[-20:]))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> SimServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def sim_rig(address: str, rig: str = "franka_realsense") -> RigConfig:
    """A Franka rig with the arm pointed at the sim server: no realtime kernel here, a faster dynamics
    factor for the joint-space homing (which otherwise takes seconds per episode), and a clock allowed to
    run slow (franky-sim ran at 0.90x real time on an idle 2-core machine)."""
    config = load_rig(rig)
    arm = config.arm.model_copy(
        update={"host": address, "realtime": False, "relative_dynamics_factor": 0.4, "clock_drift": 0.3}
    )
    return config.model_copy(update={"arm": arm})
