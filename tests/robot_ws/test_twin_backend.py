"""The twin world behind the twin node's arm and camera backends."""

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
