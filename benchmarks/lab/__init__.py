"""The franky-sim lab: a "real world" for tether's sim-to-real benchmarks (issue 19), not product code.

tether sees it exactly as it sees a `franka_realsense` rig: the Franka backend (franky / libfranka
protocol) talking to franky-sim's own FR3 (its meshes, inertias, torque control, lights and
materials, not the twin's), and two RealSense cameras (pyrealsense2 software devices, opened by
tether's RealSense driver by serial) showing franky-sim's renders of a table and a 5 cm cube with
ArUco markers. A judge puts the cube back at each episode reset and says whether it was lifted.

Processes and who owns what:
  server (benchmarks/lab/server.py, a subprocess): physics, the libfranka endpoint on its own
    loopback address, the gaps on the dynamics; publishes qpos into shared memory, applies cube
    placements between physics steps; renders nothing.
  lab (this process, `Lab`): the shared-memory block, the renders and the software RealSense
    devices (only this process can open them), the ground truth, the judge node, and for
    `python -m benchmarks.lab --policy` the deploy graph, run without realtime scheduling.

Gaps (benchmarks/lab/gaps.py), and what should close each, given the twin's randomisation terms
(tether.config.RandomizationConfig) and its system identification:
  payload     unmodelled 1 kg on the hand: system identification (a payload fit). The twin's
              randomisation has no payload term (mass_scale scales what the model has).
  friction    joint friction x2, +2 N m s/rad damping: system identification (friction / damping
              from an excitation log); randomisation (friction_scale, damping_scale) as far as
              its ranges reach.
  latency     torques 3 ms late inside franky-sim's 1 kHz loop: mostly system identification, as
              extra tracking lag that identified controller gains absorb; randomised
              action_latency_steps works at control ticks (100 ms), far coarser.
  extrinsics  cameras rendered 2 cm / 2 deg from their calibrated pose: randomisation
              (camera_pos_jitter; there is no rotation jitter, so the 2 deg turn is uncovered);
              dynamics sysid cannot see it. For marker perception it is a bias in the cube pose.
  lighting    dimmer, warmer lights, grey table, tinted cube: randomisation (light_scale,
              color_jitter) for pixel policies; marker perception hardly cares.
  cube        cube twice as heavy, half the friction: randomisation of object mass / friction;
              sysid of the arm does not see the object.

Measured on the 2-core machine (shared with other jobs, llvmpipe rendering): see the report of
issue 19 and `python -m benchmarks.lab --json`, which records the real-time factor and camera rates.
"""
