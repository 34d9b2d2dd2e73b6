"""tether: a real-robot learning stack (ROS 2 nodes, HIL SAC, diffusion policies, MuJoCo twin).

Its subpackages are the repository's top-level folders (linked here, and mapped in pyproject.toml for a wheel):
- `tether.robot_ws`: ROS 2 nodes, hardware drivers and the graph runner (the only place that imports rclpy);
- `tether.policies`: the SAC/RLPD learner, encoders, reward classifier, diffusion policy and checkpoints;
- `tether.datasets`: the zarr episode store, replay buffers, samplers and converters (MCAP, LeRobot, Diffusion
  Policy);
- `tether.teleop`: teleop input devices and intervention arbitration;
- `tether.sim2real`: the MuJoCo twin, the scripted operator, domain randomisation and system identification;
- `tether.hardware_configs`: rig YAML files, one per set-up (`tether.config.load_rig`).
The folders hold no `__init__.py` (namespace packages), so that from the repository root `import datasets` still
finds the installed Hugging Face package rather than this folder.
"""

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
