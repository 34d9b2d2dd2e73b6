"""The twin world behind the twin node's arm and camera backends."""

import numpy as np

from tether.config import load_rig
from tether.robot_ws.twin_backend import TwinWorld


def test_the_graph_clock_runs_on_across_scene_resets():
    """On sim time the world's clock is /clock; MuJoCo's own time restarts at every reset, this clock must not."""
    world = TwinWorld(load_rig("twin_panda").model_copy(update={"cameras": []}), "pick_cube", time_scale=2.0)
    with world.lock:
        world.sim.advance(1.5)
    before = world.now()
    world.reset_scene()
    assert world.sim.time < 1.5  # the simulation itself did restart
    assert world.now() >= before
    with world.lock:
        world.sim.advance(0.5)
    assert world.now() - before >= 0.5 - 1e-9
    world.stop()


def test_camera_frames_keep_the_camera_period_in_the_scene_time():
    """A twin frame is stamped with the scene instant it shows, and those instants are one camera period apart
    (the physics steps in 10 ms chunks; a frame once slipped a chunk when the two sums differed in the last bit,
    and the actor saw 110 / 90 ms gaps)."""
    rig = load_rig("twin_panda")
    world = TwinWorld(rig, "pick_cube", time_scale=20.0)  # sim time: stamps are the scene's time, whatever the load
    camera = rig.cameras[0].name
    stamps: list[float] = []
    world.start()
    try:
        sequence = 0
        while len(stamps) < 80:
            with world.new_frames:
                assert world.new_frames.wait_for(lambda: world.frame_count > sequence, timeout=10.0)
                sequence, frame = world.frame_count, world.frames[camera]
            stamps.append(frame.stamp)
    finally:
        world.stop()
    gaps = np.diff(stamps[1:])  # the first frame is the reset's, off the camera's grid
    assert np.allclose(gaps, 1.0 / rig.cameras[0].fps, atol=1e-6), gaps
