"""The lab's physics process: franky-sim's server with the lab's scene and gaps, and the world state in shared memory.

    python -m benchmarks.lab.server SETTINGS.json

franky-sim's own loop (`SimulationServer.run_forever`, 1 kHz, libfranka protocol on the given
loopback address) runs unchanged; the lab hooks in only through what franky-sim offers a user: the
MJCF tree before start, pre/post-step callbacks, and the robot's torque output (`_torque_control`,
called once per physics step while a controller runs), where the latency gap puts a FIFO. Nothing
is rendered here, so physics runs as fast as franky-sim alone. After start it saves the compiled
model (gaps included) as MJB for the lab process to render from, then prints READY.
"""

from __future__ import annotations

import ctypes
import json
import signal
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import mujoco
import numpy as np
from franky_sim import SimulationServer
from franky_sim.mujoco_simulator import FrankaMujocoRobot, MujocoSimulator

from benchmarks.lab.gaps import Gaps
from benchmarks.lab.scene import CUBE_HALF, CUBE_JOINT, RenderCamera, apply_compiled_gaps, build_scene
from benchmarks.lab.shared import WorldState

READY = "LAB SERVER READY"
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ServerSettings:
    """What the lab tells its server process (as JSON in a file)."""

    address: str
    shared_memory: str
    folder: str
    """Where the server writes the marker textures and the compiled model."""
    gaps: dict
    cameras: list[dict]
    publish_every: int = 4
    """Physics steps (ms) between two world-state publications."""

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @property
    def model_path(self) -> Path:
        return Path(self.folder) / "lab_model.mjb"


def delay_torques(robot: FrankaMujocoRobot, steps: int) -> None:
    """Pass every torque command through a FIFO of `steps` physics steps (the latency gap)."""
    if steps == 0:
        return
    apply: Callable[[np.ndarray], None] = robot._torque_control  # noqa: SLF001 - franky-sim's torque output
    queue: deque[np.ndarray] = deque()

    def delayed(torques: np.ndarray) -> None:
        queue.append(np.array(torques, float))
        apply(queue[0])  # until the FIFO fills, the first command is held
        if len(queue) > steps:
            queue.popleft()

    robot._torque_control = delayed  # noqa: SLF001


def cube_placer(sim: MujocoSimulator, world: WorldState) -> Callable[[MujocoSimulator], None]:
    """A pre-step callback that puts the cube where the lab asked, at rest on the table."""
    joint = sim.model.joint(CUBE_JOINT)
    qadr, dadr = joint.qposadr[0], joint.dofadr[0]

    def place(_: MujocoSimulator) -> None:
        request = world.pending_request()
        if request is None:
            return
        number, x, y, yaw = request
        sim.data.qpos[qadr : qadr + 7] = [x, y, CUBE_HALF, np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        sim.data.qvel[dadr : dadr + 6] = 0.0
        world.publish(sim.data.qpos, float(sim.data.time))
        world.mark_applied(number)

    return place


def world_publisher(sim: MujocoSimulator, world: WorldState, every: int) -> Callable[[MujocoSimulator], None]:
    """A post-step callback that publishes qpos and time every `every` steps."""
    steps = 0

    def publish(_: MujocoSimulator) -> None:
        nonlocal steps
        steps += 1
        if steps % every == 0:
            world.publish(sim.data.qpos, float(sim.data.time))

    return publish


def die_with_parent() -> None:
    """A lab killed without its cleanup must not leave its server holding an address and a core."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def serve(settings: ServerSettings) -> None:
    die_with_parent()
    gaps = Gaps(**settings.gaps)
    world = WorldState.attach(settings.shared_memory)
    with MujocoSimulator() as sim:
        robot = sim.add_robot()
        build_scene(sim.scene, gaps, [RenderCamera(**c) for c in settings.cameras], Path(settings.folder))
        delay_torques(robot, gaps.latency_ms)
        with SimulationServer(sim, hostname_candidates=[settings.address]) as server:
            apply_compiled_gaps(sim.model, gaps)
            mujoco.mj_saveModel(sim.model, str(settings.model_path), None)
            sim.register_pre_step_callback(cube_placer(sim, world))
            sim.register_post_step_callback(world_publisher(sim, world, settings.publish_every))
            world.publish(sim.data.qpos, float(sim.data.time))
            print(READY, flush=True)
            try:
                server.run_forever()
            except KeyboardInterrupt:
                pass


if __name__ == "__main__":
    serve(ServerSettings(**json.loads(Path(sys.argv[1]).read_text())))
