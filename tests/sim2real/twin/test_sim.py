"""TwinSim: the simulation under both the gym env and the graph's twin."""

import numpy as np

from tether.config import load_rig
from tether.sim2real.twin.sim import TwinSim


def test_time_runs_on_across_resets():
    """A graph on sim time publishes this time on /clock; a clock that jumps back stalls every timer."""
    sim = TwinSim(load_rig("twin_panda").model_copy(update={"cameras": []}), "pick_cube")
    rng = np.random.default_rng(0)
    sim.reset(rng)
    sim.advance(2.0)
    before = sim.time
    sim.reset(rng)
    assert sim.time > before
    home = sim.proprio()
    sim.reset(rng)
    np.testing.assert_allclose(sim.proprio()["state/joints"], home["state/joints"], atol=1e-3)  # still homed
    sim.close()
