"""The arm node's safety layer on the twin, measured on the twin's own motion.

- speed over time: command streams of in-limit velocities at 10 Hz, 100 Hz, 1 kHz and in bursts
  (back-to-back messages) into `arm/cmd`; the largest TCP speed over any control period, measured
  on the twin (simulation clock), as a ratio of `max_linear_speed` (must stay <= 1.1);
- e-stop latency: from publishing `estop` to the arm's hold having been sent to the backend,
  p50 / p99, with the arm idle and with a home in flight (a backend whose home takes 2 s, as a
  real arm's homing motion; the twin's own home is a scene reset of a few ms); goal p99 <= one
  control period;
- watchdog hold delay: from the last command to the hold, against the rig's `watchdog_s`.

Everything runs in this process: twin, arm node and a plain node that publishes.

    .venv/bin/python -m benchmarks.safety [--repeats 3] [--trials 40]
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np
from geometry_msgs.msg import TwistStamped
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

import tether  # noqa: F401  (headless GL before mujoco)
from benchmarks.report import markdown_table, write_results
from tether.config import RigConfig, load_rig
from tether.robot_ws import messages, qos
from tether.robot_ws.interfaces import DeviceError
from tether.robot_ws.graph import plain_node
from tether.robot_ws.network import enclave_of, new_context
from tether.robot_ws.nodes.arm import ArmNode
from tether.robot_ws.spinning import NodeSpinners
from tether.robot_ws.twin_backend import TcpTrace, TwinArm, TwinWorld

SLOW_HOME_S = 2.0
STREAM_S = 1.2
BURST = (50, 0.3)  # messages back to back, then a pause (s)


class TimedArm(TwinArm):
    """The twin arm, noting when each hold was sent; its home takes SLOW_HOME_S when `slow_home` is set."""

    def __init__(self, world: TwinWorld) -> None:
        super().__init__(world)
        self.hold_times: list[float] = []
        self.slow_home = False
        self.home_started = threading.Event()

    def hold(self) -> None:
        super().hold()
        self.hold_times.append(time.monotonic())

    def home(self, abort: threading.Event | None = None) -> None:
        self.home_started.set()
        if self.slow_home and abort is not None and abort.wait(SLOW_HOME_S):
            raise DeviceError("twin: home interrupted by e-stop")
        super().home(abort)


class Bench:
    """Twin, arm node and an operator node, spinning as a graph spins them."""

    def __init__(self, rig: RigConfig) -> None:
        self.rig = rig
        self.context = new_context(rig.network, enclave_of(("arm", "operator")))  # closed to the network, as a graph
        self.world = TwinWorld(rig.model_copy(update={"cameras": []}), rig.task.name)
        self.backend = TimedArm(self.world)
        self.arm = ArmNode(rig, self.backend, context=self.context)
        self.operator = plain_node(self.context, "operator", rig.namespace)
        self.cmd = self.operator.create_publisher(TwistStamped, "arm/cmd", qos.COMMAND)
        self.estop = self.operator.create_publisher(Bool, "estop", qos.LATCHED)
        self.home_client = self.operator.create_client(Trigger, "arm/home")
        self.spinners = NodeSpinners(self.context)
        self.spinners.add(self.arm)
        self.spinners.add(self.operator)
        self.world.start()
        self.spinners.start()
        if not self.home_client.wait_for_service(timeout_sec=10):
            raise RuntimeError("arm/home did not come up")

    def send(self, velocity: np.ndarray) -> None:
        now = self.operator.get_clock().now().nanoseconds * 1e-9
        self.cmd.publish(messages.twist_msg(velocity, now))

    def home(self) -> None:
        future = self.home_client.call_async(Trigger.Request())
        wait(future.done, 10)

    def close(self) -> None:
        self.spinners.shutdown()
        self.arm.destroy_node()
        self.operator.destroy_node()
        self.world.stop()


def wait(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def stream(bench: Bench, velocity: np.ndarray, kind: str) -> int:
    """Publish `velocity` for STREAM_S as `kind` ('10 Hz', '100 Hz', '1 kHz' or 'bursts'); returns messages sent."""
    sent, start = 0, time.monotonic()
    if kind == "bursts":
        while time.monotonic() - start < STREAM_S:
            for _ in range(BURST[0]):
                bench.send(velocity)
                sent += 1
            time.sleep(BURST[1])
        return sent
    period = {"10 Hz": 0.1, "100 Hz": 0.01, "1 kHz": 0.001}[kind]
    next_send = start
    while time.monotonic() - start < STREAM_S:
        bench.send(velocity)
        sent += 1
        next_send += period
        time.sleep(max(0.0, next_send - time.monotonic()))
    return sent


def speed_ratios(bench: Bench, repeats: int) -> list[dict]:
    rig, limit = bench.rig, bench.rig.arm.max_linear_speed
    rows = []
    for kind in ("10 Hz", "100 Hz", "1 kHz", "bursts"):
        ratios, sent_total, applied_total = [], 0, 0
        for repeat in range(repeats):
            bench.home()
            time.sleep(0.3)
            velocity = np.array([limit, 0, 0, 0, 0, 0]) if repeat % 2 == 0 else np.array([0, limit, 0, 0, 0, 0])
            trace = TcpTrace(bench.world)
            start, applied = trace.clock(), bench.arm.counters["applied"]
            sent_total += stream(bench, velocity, kind)
            time.sleep(0.4)
            trace.close()
            applied_total += bench.arm.counters["applied"] - applied
            ratios.append(trace.max_speed(rig.control_dt, start=start) / limit)
        rows.append({
            "stream": kind, "messages": sent_total, "setpoints": applied_total,
            "max_speed_ratio": float(max(ratios)), "median_run_max_ratio": float(np.median(ratios)),
            "run_max_ratios": [round(float(r), 4) for r in ratios],
        })
    return rows


def estop_latencies(bench: Bench, trials: int, during_home: bool) -> dict:
    """Seconds from publishing the e-stop to its hold having been sent to the backend."""
    latencies, interrupted = [], 0
    bench.backend.slow_home = during_home
    for _ in range(trials):
        future = None
        if during_home:
            bench.backend.home_started.clear()
            future = bench.home_client.call_async(Trigger.Request())
            wait(bench.backend.home_started.is_set, 10)
            time.sleep(0.05)  # well inside the home
        holds = len(bench.backend.hold_times)
        sent = time.monotonic()
        bench.estop.publish(Bool(data=True))
        if not wait(lambda: len(bench.backend.hold_times) > holds, 10):
            raise RuntimeError("the e-stop's hold never reached the backend")
        latencies.append(bench.backend.hold_times[holds] - sent)
        if future is not None:
            wait(future.done, 10)
            interrupted += not future.result().success
        bench.estop.publish(Bool(data=False))
        wait(lambda: not bench.arm.estopped, 10)
        time.sleep(0.02)
    bench.backend.slow_home = False
    ms = np.array(latencies) * 1e3
    return {
        "trials": trials, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()), "homes_interrupted": interrupted,
    }


def watchdog_delays(bench: Bench, trials: int) -> dict:
    """Seconds from the last command's publication to the watchdog's hold."""
    delays = []
    for _ in range(trials):
        bench.home()
        for _ in range(5):
            bench.send(np.array([0.05, 0, 0, 0, 0, 0]))
            time.sleep(bench.rig.control_dt)
        holds, last = len(bench.backend.hold_times), time.monotonic() - bench.rig.control_dt
        bench.send(np.array([0.05, 0, 0, 0, 0, 0]))
        last = time.monotonic()
        if not wait(lambda: len(bench.backend.hold_times) > holds, 5):
            raise RuntimeError("the watchdog never held")
        delays.append(bench.backend.hold_times[holds] - last)
    ms = np.array(delays) * 1e3
    return {"trials": trials, "p50_ms": float(np.percentile(ms, 50)), "max_ms": float(ms.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command stream")
    parser.add_argument("--trials", type=int, default=40, help="e-stops with and without a home in flight")
    parser.add_argument("--watchdog-trials", type=int, default=8)
    args = parser.parse_args()
    rig = load_rig("twin_panda")
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    bench = Bench(rig)
    try:
        streams = speed_ratios(bench, args.repeats)
        estop_idle = estop_latencies(bench, args.trials, during_home=False)
        estop_home = estop_latencies(bench, args.trials, during_home=True)
        watchdog = watchdog_delays(bench, args.watchdog_trials)
    finally:
        bench.close()
    period_ms = rig.control_dt * 1e3
    results = {
        "rig": rig.name, "control_period_ms": period_ms, "max_linear_speed": rig.arm.max_linear_speed,
        "watchdog_ms": rig.safety.watchdog_s * 1e3, "streams": streams,
        "estop_idle": estop_idle, "estop_during_home": estop_home, "watchdog": watchdog,
    }
    speed = markdown_table(
        ["command stream (in-limit velocity, 1.2 s a run)", "messages", "setpoints sent", "max TCP speed / limit",
         "median of run maxima"],
        [[r["stream"], r["messages"], r["setpoints"], f"{r['max_speed_ratio']:.3f}", f"{r['median_run_max_ratio']:.3f}"]
         for r in streams],
    )
    latency = markdown_table(
        ["e-stop", "trials", "latency ms p50 / p99 (max)", "p99 / control period", "homes interrupted"],
        [[name, e["trials"], f"{e['p50_ms']:.1f} / {e['p99_ms']:.1f} ({e['max_ms']:.1f})",
          f"{e['p99_ms'] / period_ms:.2f}", e["homes_interrupted"] if name != "arm idle" else "-"]
         for name, e in (("arm idle", estop_idle), ("home in flight", estop_home))],
    )
    dog = markdown_table(
        ["watchdog", "trials", "hold after the last command ms p50 (max)", "watchdog_s ms"],
        [["10 Hz stream stops", watchdog["trials"], f"{watchdog['p50_ms']:.1f} ({watchdog['max_ms']:.1f})",
          f"{rig.safety.watchdog_s * 1e3:.0f}"]],
    )
    notes = (
        f"`.venv/bin/python -m benchmarks.safety --repeats {args.repeats} --trials {args.trials}`. Rig twin_panda "
        f"(control period {period_ms:.0f} ms, max_linear_speed {rig.arm.max_linear_speed} m/s), twin, arm node and "
        "publisher in one process. Speed: the largest mean TCP speed over any control period of the twin's "
        "measured motion (simulation clock), commands at the speed limit. E-stop latency: publication to the "
        f"hold sent to the backend; 'home in flight' uses a backend whose home takes {SLOW_HOME_S:g} s. "
        f"Load average before the run: {load_before}; 2 cores. The setpoints themselves move no faster "
        "than the limit over the time they had (tests/tether/test_safety.py); what is left above 1.0 is the "
        "twin arm's tracking. Two causes of overshoot were found and removed (ablation on this benchmark, "
        "10 runs per stream): a step from rest to full speed in one period (up to 1.14 at 100 Hz and 1 kHz "
        "without `max_linear_accel`), and twin ramps that ended a physics chunk before a setpoint that came a "
        "chunk late (pauses after which the arm overshot: up to 1.13 at 10 Hz before the twin kept a chunk of "
        "slack)."
    )
    write_results("safety", results, "\n\n".join([speed, latency, dog]), notes)
    print(speed, latency, dog, sep="\n\n")


if __name__ == "__main__":
    main()
