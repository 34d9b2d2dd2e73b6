"""tether: a real-robot learning stack (ROS 2 nodes, HIL SAC, diffusion policies, MuJoCo twin)."""

__version__ = "0.1.0"
