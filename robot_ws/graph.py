"""Composing tether's ROS 2 graph: which nodes run, on which backends, in this process.

`Graph` builds the nodes a job needs (in one process, each spinning on its own thread, or a
subset of them per process; nodes find each other over DDS either way), runs them, and
shuts them down in the safe order: the actor stops commanding, the arm holds, the recorder
discards an open episode, the learner checkpoints, the twin stops.

On a twin rig the twin world lives in the process that runs the `twin` node, and the arm,
camera and scripted-teleop nodes of that rig must run there too (they reach the world
directly, as drivers reach their hardware).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import gymnasium as gym
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter

from tether import spaces
from tether.actions import ActionScale
from tether.config import RigConfig, TwinArm
from tether.policies.registry import load_policy
from tether.policies.residual import BASE_ACTION, base_action_space
from tether.robot_ws.network import enclave_of, new_context
from tether.robot_ws.nodes.actor import ActorMode, ActorNode
from tether.robot_ws.nodes.arm import ArmNode
from tether.robot_ws.nodes.camera import CameraNode
from tether.robot_ws.nodes.teleop import TeleopNode
from tether.robot_ws.spinning import NodeSpinners
from tether.robot_ws.twin_backend import TwinArm as TwinArmBackend
from tether.robot_ws.twin_backend import TwinCamera, TwinWorld
from tether.robot_ws.twin_operator import OperatorMode, ScriptedTeleop

if TYPE_CHECKING:  # torch and diffusers load only in processes that steer a base policy
    from tether.policies.steering import Steering

DEFAULT_NODES = ("twin", "arm", "cameras", "teleop", "actor", "learner", "recorder")
GIL_SWITCH_S = 0.001
"""How long a thread may hold the GIL while another waits for it, in a process that runs a graph. Python's 5 ms
default let the physics, camera and executor threads delay a frame or a command by several ms at a time
(benchmarks/control_loop.py: latency p99 24.9 -> 21.0 ms, period jitter p99 4.2 -> 0.6 ms at 10 Hz); 0.5 ms
switched so often that it was slower again."""
NODE_NAMES = (*DEFAULT_NODES, "mirror", "reach", "viewer", "bag")  # the live twin, the real-side reach judge, the
# rerun view and the MCAP recording run only when asked for


@dataclass
class GraphSpec:
    """What to run. Paths and modes only matter for the nodes that use them."""

    rig: RigConfig
    nodes: tuple[str, ...] = DEFAULT_NODES
    obs_mode: Literal["state", "pixels", "all"] = "state"
    """state: proprio + twin task state; pixels: proprio + cameras; all (recording): every one of them."""
    policy: Path | None = None
    """A checkpoint or run folder the actor acts with from the start (eval / deploy) instead of waiting for the learner."""
    actor_mode: ActorMode = "hil"
    operator: OperatorMode = "takeover"
    store: Path | None = None
    source: str = "hil"
    run_dir: Path | None = None
    demos: Path | None = None
    max_episodes: int | None = None
    time_scale: float = 1.0
    seed: int = 0
    learner_kwargs: dict = field(default_factory=dict)
    steering: Steering | None = None
    """A frozen diffusion policy the actor's SAC policy corrects (residual RL; `tether train hil --base-policy`).
    A `policy` checkpoint trained that way needs none: it loads with its base (`load_policy`)."""
    view: str | None = None
    """Where the viewer node streams the run: `spawn` (a rerun viewer) or a .rrd path (`--view`)."""
    bag: Path | None = None
    """The MCAP file the bag node records the graph's topics into (`--bag`)."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.nodes) - set(NODE_NAMES))
        if unknown:
            raise ValueError(f"nodes {unknown}: unknown (known: {', '.join(NODE_NAMES)})")
        twin = isinstance(self.rig.arm, TwinArm)
        if twin and {"arm", "cameras", "teleop"} & set(self.nodes) and "twin" not in self.nodes:
            raise ValueError(f"rig '{self.rig.name}': arm, cameras and teleop of a twin rig run with the twin node")
        if twin and "reach" in self.nodes:
            raise ValueError(f"rig '{self.rig.name}': the twin judges its own tasks; the reach node is for rigs without one")
        if "recorder" in self.nodes and self.store is None:
            raise ValueError("the recorder node needs a store path")
        if "learner" in self.nodes and self.run_dir is None:
            raise ValueError("the learner node needs a run directory")
        if "viewer" in self.nodes and self.view is None:
            raise ValueError("the viewer node needs a target (spawn or a .rrd path)")
        if "bag" in self.nodes and self.bag is None:
            raise ValueError("the bag node needs an MCAP path")


def plain_node(context: rclpy.Context, name: str, namespace: str) -> Node:
    """A bare node in `context`, for a script or benchmark that publishes or listens itself."""
    return rclpy.create_node(name, namespace=namespace, context=context)


class Graph:
    """A running set of nodes with their own ROS context and a spinning thread per node."""

    def __init__(self, spec: GraphSpec) -> None:
        self.spec = spec
        rig = spec.rig
        self.context = new_context(rig.network, enclave_of(spec.nodes))
        self.world: TwinWorld | None = None
        self.nodes: dict[str, Node] = {}
        self._stopped = False
        try:
            self._build(rig)
        except Exception:
            self.shutdown()
            raise
        self.spinners = NodeSpinners(self.context)
        for node in self.nodes.values():
            self.spinners.add(node)

    # --- construction -----------------------------------------------------------------

    def _kwargs(self) -> dict:
        kwargs: dict = {"context": self.context}
        if self.spec.time_scale != 1.0:
            kwargs["parameter_overrides"] = [Parameter("use_sim_time", Parameter.Type.BOOL, True)]
        return kwargs

    def observation_space(self):
        return observation_space_of(self.spec)

    def _build(self, rig: RigConfig) -> None:
        spec, names = self.spec, set(self.spec.nodes)
        if "twin" in names:
            from tether.robot_ws.nodes.twin import TwinNode

            # Without a camera node nobody reads frames: the twin skips rendering altogether.
            world_rig = rig if "cameras" in names else rig.model_copy(update={"cameras": []})
            self.world = TwinWorld(world_rig, rig.task.name, seed=spec.seed, time_scale=spec.time_scale)
            self.nodes["twin"] = TwinNode(self.world, context=self.context)
        if "arm" in names:
            self.nodes["arm"] = ArmNode(rig, self._arm_backend(rig), **self._kwargs())
        if "cameras" in names and rig.cameras:
            self.nodes["cameras"] = CameraNode(rig, self._camera_drivers(rig), **self._kwargs())
        if "teleop" in names:
            self.nodes["teleop"] = TeleopNode(rig, self._teleop_device(rig), **self._kwargs())
        if "learner" in names:
            from tether.robot_ws.nodes.learner import LearnerNode

            self.nodes["learner"] = LearnerNode(
                rig, self.observation_space(), spec.run_dir, demos=spec.demos, seed=spec.seed,
                steering=spec.steering, **spec.learner_kwargs, **self._kwargs(),
            )
        if "recorder" in names:
            from tether.robot_ws.nodes.recorder import RecorderNode

            self.nodes["recorder"] = RecorderNode(rig, spec.store, spec.source, rig.task.name, **self._kwargs())
        if "reach" in names:
            from tether.robot_ws.nodes.reach import ReachNode

            self.nodes["reach"] = ReachNode(rig, seed=spec.seed, **self._kwargs())
        if "viewer" in names:
            from tether.robot_ws.nodes.viewer import ViewerNode

            self.nodes["viewer"] = ViewerNode(rig, spec.view, **self._kwargs())
        if "bag" in names:
            from tether.robot_ws.nodes.bag import BagNode

            self.nodes["bag"] = BagNode(rig, spec.bag, **self._kwargs())
        if "mirror" in names:
            from tether.robot_ws.nodes.mirror import MirrorNode

            # On a rig with no twin and no reach node, the mirror's view of the task is the task state.
            judge = self.world is None and "reach" not in names
            self.nodes["mirror"] = MirrorNode(rig, judge=judge, **self._kwargs())
        if "actor" in names:
            import torch

            # Batch-1 inference once a control period: a torch thread pool that sleeps between steps takes longer
            # to wake than the work it shares (two pixel encoders: 15 ms on two threads, 4 ms on one).
            torch.set_num_threads(1)
            policy = None if spec.policy is None else load_policy(
                spec.policy, deterministic=spec.actor_mode == "eval", asynchronous=True)
            residual = spec.steering.residual() if spec.steering is not None else None
            # The actor assembles (and records) the spec's observation and whatever its policy and base need.
            keys = tuple(self.observation_space().spaces)
            for needs in (policy, residual.base if residual is not None else None):
                if needs is not None:
                    keys += tuple(k for k in needs.observation_keys if k not in keys)
            self.nodes["actor"] = ActorNode(
                rig, spec.actor_mode, keys, policy=policy, residual=residual, max_episodes=spec.max_episodes,
                **self._kwargs(),
            )

    def _arm_backend(self, rig: RigConfig):
        if self.world is not None:
            return TwinArmBackend(self.world)
        from tether.robot_ws.drivers import make_arm

        backend = make_arm(rig)
        backend.connect()  # a hardware arm connects here, as the camera drivers do; shutdown closes it
        return backend

    def _camera_drivers(self, rig: RigConfig) -> dict:
        drivers = {}
        for camera in rig.cameras:
            if camera.backend == "twin":
                drivers[camera.name] = TwinCamera(self.world, camera)
            else:
                from tether.robot_ws.drivers import make_camera

                drivers[camera.name] = make_camera(camera)
            drivers[camera.name].connect()
        return drivers

    def _teleop_device(self, rig: RigConfig):
        if rig.teleop.device == "scripted":
            if self.world is None:
                raise ValueError(f"rig '{rig.name}': the scripted operator needs the twin in this process")
            device = ScriptedTeleop(self.world, rig, self.spec.operator, seed=self.spec.seed)
        else:
            from tether.teleop.devices import make_teleop

            device = make_teleop(rig.teleop)
        device.connect()
        return device

    # --- running ----------------------------------------------------------------------

    def start(self) -> Graph:
        sys.setswitchinterval(GIL_SWITCH_S)
        if self.world is not None:
            self.world.start()
        self.spinners.start()
        return self

    def wait(self, until: Callable[[], bool], timeout_s: float | None = None, poll_s: float = 0.05) -> bool:
        """Block until `until()` is true (returns True) or the timeout passes (False)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not until():
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(poll_s)
        return True

    def node(self, name: str) -> Node:
        return self.nodes[name]

    def plain_node(self, name: str) -> Node:
        """A bare node in this graph's context and namespace, for scripts that publish or listen themselves."""
        return plain_node(self.context, name, self.spec.rig.namespace)

    def shutdown(self) -> None:
        """Stop in the safe order; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        actor = self.nodes.get("actor")
        if actor is not None:
            actor.stop()
        arm = self.nodes.get("arm")
        if arm is not None:
            arm.backend.hold()
        recorder = self.nodes.get("recorder")
        if recorder is not None:
            recorder.close()
        learner = self.nodes.get("learner")
        if learner is not None:
            learner.shutdown()
        if self.world is not None:
            self.world.stop()
            self.world = None
        for node in self.nodes.values():
            for timer in list(node.timers):
                timer.cancel()
        spinners = getattr(self, "spinners", None)
        if spinners is not None:
            spinners.shutdown()
        elif self.context.ok():
            rclpy.shutdown(context=self.context)
        for node in self.nodes.values():  # kept in self.nodes: their counters and results stay readable
            node.destroy_node()
        if arm is not None:
            arm.backend.close()

    def __enter__(self) -> Graph:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def observation_space_of(spec: GraphSpec):
    """What the actor observes: proprioception plus cameras and/or the twin's task state (and, steering a
    base policy, the base's proposal)."""
    from tether.sim2real.twin.tasks import make_task

    rig, mode = spec.rig, spec.obs_mode
    cameras = list(rig.cameras) if mode in ("pixels", "all") else []
    twin = isinstance(rig.arm, TwinArm)
    extra = make_task(rig.task.name).state_dims if mode == "state" or (mode == "all" and twin) else None
    space = spaces.observation_space(cameras, extra_state=extra, gripper=ActionScale.of_rig(rig).gripper)
    if spec.steering is None:
        return space
    return gym.spaces.Dict({**space.spaces, BASE_ACTION: base_action_space(spaces.action_space(rig).shape[0])})


def parse_nodes(names: Iterable[str] | None) -> tuple[str, ...]:
    return tuple(names) if names else DEFAULT_NODES
