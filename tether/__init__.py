"""tether: a real-robot learning stack (ROS 2 nodes, HIL SAC, diffusion policies, MuJoCo twin)."""

import os

# Headless rendering: MuJoCo picks its GL backend when first imported, so any tether entry
# point sets it before mujoco can be. A user's own MUJOCO_GL wins.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

__version__ = "0.1.0"
