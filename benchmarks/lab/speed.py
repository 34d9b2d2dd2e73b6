"""What the lab's cameras cost: franky-sim's real-time factor and the frames tether's RealSense driver gets.

    .venv/bin/python -m benchmarks.lab.speed          # results/lab_speed.json and its README section

Three conditions, each `--seconds` long, on whatever this machine is also doing (its load average is
recorded): franky-sim alone (no cameras), and both cameras streamed to tether's RealSense driver at
15 and at 30 fps. The arm stands idle (franky-sim holds it), so physics costs what it costs at rest.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

from benchmarks.lab.lab import Lab  # noqa: E402
from benchmarks.report import markdown_table, write_results  # noqa: E402
from tether.robot_ws.camera_realsense import RealSenseCamera  # noqa: E402

WARM_UP_S = 2.0


def measure(fps: int | None, seconds: float) -> dict:
    """One condition: fps None runs the lab without cameras."""
    load = os.getloadavg()[0]
    with Lab(cameras=fps is not None, fps=fps or 15) as lab:
        drivers = [RealSenseCamera(c) for c in lab.rig.cameras]
        for driver in drivers:
            driver.connect()
        try:
            time.sleep(WARM_UP_S)
            before = {name: (r.frames, r.seconds) for name, r in lab.renders.items()}
            factor = lab.real_time_factor(seconds)
            row = {"fps_asked": fps, "load_average": load, "real_time_factor": factor}
            for driver in drivers:
                render = lab.renders[driver.config.name]
                frames, spent = render.frames - before[driver.config.name][0], render.seconds - before[driver.config.name][1]
                row[f"{driver.config.name}_driver_fps"] = driver.measured_fps
                row[f"{driver.config.name}_render_ms"] = 1000 * spent / max(frames, 1)
        finally:
            for driver in drivers:
                driver.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    rows = [measure(fps, args.seconds) for fps in (None, 15, 30)]
    table = markdown_table(
        ["cameras", "load avg", "franky-sim real-time factor", "front fps (driver)", "wrist fps (driver)",
         "front render ms", "wrist render ms"],
        [[f"{r['fps_asked']} fps" if r["fps_asked"] else "none", f"{r['load_average']:.1f}", f"{r['real_time_factor']:.2f}",
          *(f"{r[k]:.1f}" if k in r else "-" for k in ("front_driver_fps", "wrist_driver_fps", "front_render_ms", "wrist_render_ms"))]
         for r in rows],
    )
    notes = ("The franky-sim lab (benchmarks/lab): the server's real-time factor with the arm at rest, and the frames "
             "tether's RealSense driver receives from the lab's 640x480 software cameras (llvmpipe renders, shadows "
             "off, render threads at nice 10 so physics comes first). `python -m benchmarks.lab.speed`.")
    write_results("lab_speed", {"seconds": args.seconds, "rows": rows}, table, notes)
    print(table)


if __name__ == "__main__":
    main()
