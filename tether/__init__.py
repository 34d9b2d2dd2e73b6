"""tether: a real-robot learning stack (ROS 2 nodes, HIL SAC, diffusion policies, MuJoCo twin)."""

import os

# Headless rendering: MuJoCo picks its GL backend when first imported, so any tether entry
# point sets it before mujoco can be. A user's own MUJOCO_GL wins.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
# Mesa's CPU rasteriser (llvmpipe) rasterises on the rendering thread instead of a worker per core: a
# 128 px camera renders 20% slower (4.6 against 3.8 ms for two), but no longer takes every core at once, which
# preempted the control thread and was most of the control loop's jitter tail (benchmarks/control_loop.py).
os.environ.setdefault("LP_NUM_THREADS", "0")

__version__ = "0.1.0"
