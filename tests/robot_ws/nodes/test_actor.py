"""The actor's observation assembly (stale and missing inputs), human override and what it does when the learner
is lost, over real topics."""

import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped, TwistStamped
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float32, Float32MultiArray, UInt8MultiArray
from std_srvs.srv import Trigger

import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor

from tether import spaces
from tether.config import load_rig
from tether.robot_ws import messages, qos
from tether.datasets.store import EpisodeStore
from tether.policies.networks import EncoderConfig
from tether.policies.registry import SACPolicy
from tether.policies.sac import SACAgent, SACConfig
from tether.robot_ws.graph import Graph, GraphSpec, observation_space_of
from tether.robot_ws.nodes import actor as actor_module
from tether.robot_ws.nodes.actor import LEARNER_LOST, ActorNode

KEYS = (spaces.TCP_POSE, spaces.TCP_VEL, spaces.GRIPPER, spaces.JOINTS, "state/cube_pos")


def state_publishers(feeder) -> dict:
    """Publishers of the arm state and the twin's task state, as the arm and twin nodes would send them."""
    return {
        "pose": feeder.create_publisher(PoseStamped, "arm/tcp_pose", qos.SENSOR),
        "twist": feeder.create_publisher(TwistStamped, "arm/tcp_twist", qos.SENSOR),
        "joints": feeder.create_publisher(JointState, "arm/joint_states", qos.SENSOR),
        "gripper": feeder.create_publisher(Float32, "gripper/state", qos.SENSOR),
        "task": feeder.create_publisher(Float32MultiArray, "twin/task_state", qos.SENSOR),
    }


@pytest.fixture
def actor_setup(ros):
    rig = load_rig("twin_panda")
    actor = ros.add(ActorNode(rig, "hil", KEYS, context=ros.context))
    feeder = ros.node("feeder", rig.namespace)
    pubs = {
        **state_publishers(feeder),
        "teleop_cmd": feeder.create_publisher(TwistStamped, "teleop/cmd", qos.COMMAND),
        "teleop_gripper": feeder.create_publisher(Float32, "teleop/gripper", qos.COMMAND),
        "engaged": feeder.create_publisher(Bool, "teleop/engaged", qos.COMMAND),
    }
    ros.start()
    time.sleep(0.5)  # discovery
    now = lambda: actor.get_clock().now().nanoseconds * 1e-9  # noqa: E731
    return rig, actor, pubs, now


def publish_state(pubs, stamp: float, pose_age: float = 0.0) -> None:
    pose = np.array([0.5, 0.0, 0.2, 1.0, 0.0, 0.0, 0.0])
    pubs["pose"].publish(messages.pose_msg(pose, stamp - pose_age))
    pubs["twist"].publish(messages.twist_msg(np.zeros(6), stamp))
    pubs["joints"].publish(messages.joint_state_msg(tuple(f"joint{i}" for i in range(7)), np.zeros(7), np.zeros(7), np.zeros(7), stamp))
    pubs["gripper"].publish(Float32(data=0.5))
    pubs["task"].publish(messages.task_state_msg({"cube_pos": np.array([0.5, 0.1, 0.025], np.float32)}))


def test_missing_inputs_give_no_observation(actor_setup, wait_for):
    _, actor, pubs, now = actor_setup
    assert actor.observation(now()) is None
    assert actor.counters["stale_tcp_pose"] == 1


def test_fresh_inputs_assemble_every_key(actor_setup, wait_for):
    _, actor, pubs, now = actor_setup
    publish_state(pubs, now())
    assert wait_for(lambda: actor.observation(now()) is not None, timeout_s=5)
    obs = actor.observation(now())
    assert set(obs) == set(KEYS)
    assert obs[spaces.TCP_POSE].shape == (7,) and obs[spaces.TCP_POSE].dtype == np.float32
    np.testing.assert_allclose(obs["state/cube_pos"], [0.5, 0.1, 0.025])
    assert obs[spaces.JOINTS].shape == (7,) and obs[spaces.GRIPPER].tolist() == [0.5]


def test_stale_input_refuses_the_step(actor_setup, wait_for):
    rig, actor, pubs, now = actor_setup
    publish_state(pubs, now(), pose_age=rig.safety.staleness_s * 3)
    assert wait_for(lambda: "tcp_pose" in actor._latest, timeout_s=5)
    assert actor.observation(now()) is None
    assert actor.counters["stale_tcp_pose"] >= 1


def test_human_overrides_then_hands_back_after_the_sticky_window(actor_setup, wait_for):
    rig, actor, pubs, now = actor_setup
    velocity = messages.action_to_velocity(np.array([1.0, -0.5, 0.0, 0.0]), rig)
    pubs["teleop_cmd"].publish(messages.twist_msg(velocity, now()))
    pubs["teleop_gripper"].publish(Float32(data=1.0))
    pubs["engaged"].publish(Bool(data=True))
    assert wait_for(lambda: actor._human_action(now()) is not None, timeout_s=5)
    np.testing.assert_allclose(actor._human_action(now()), [1.0, -0.5, 0.0, 1.0], atol=1e-6)
    pubs["engaged"].publish(Bool(data=False))
    pubs["teleop_cmd"].publish(messages.twist_msg(velocity, now()))
    assert wait_for(lambda: not actor._latest["teleop_engaged"].value.data, timeout_s=5)
    assert actor._human_action(now()) is not None  # still inside the sticky window
    time.sleep(rig.teleop.sticky_s + 0.1)
    pubs["teleop_cmd"].publish(messages.twist_msg(velocity, now()))
    pubs["engaged"].publish(Bool(data=False))
    time.sleep(0.2)
    assert actor._human_action(now()) is None


def test_a_reset_whose_reply_never_comes_is_asked_again(ros, wait_for, monkeypatch):
    """DDS can lose a service reply across processes; the actor must not wait for it forever. The arm/reset server
    here never answers its first request (it blocks, on a thread of its own) and answers the second at once."""
    monkeypatch.setattr(actor_module, "RESET_REPLY_S", 0.5)
    rig = load_rig("twin_panda")
    actor = ros.add(ActorNode(rig, "teleop", KEYS, context=ros.context))
    ros.start()
    server = rclpy.create_node("reset_server", namespace=rig.namespace, context=ros.context)
    released, calls = threading.Event(), []

    def on_reset(request, response):
        calls.append(time.monotonic())
        if len(calls) == 1:
            released.wait(10.0)  # the reply that is lost
        response.success = True
        return response

    server.create_service(Trigger, "arm/reset", on_reset, callback_group=ReentrantCallbackGroup())
    executor = MultiThreadedExecutor(num_threads=2, context=ros.context)
    executor.add_node(server)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        assert wait_for(lambda: actor._phase == "running", timeout_s=8), actor.counters
        assert len(calls) == 2 and actor.counters["reset_reply_lost"] == 1 and actor.episode == 1
    finally:
        released.set()
        time.sleep(0.2)  # the released reply goes out before its node does (rclpy's shutdown does not wait for it)
        executor.shutdown()
        server.destroy_node()


def _weights_msg(agent, version: int):
    weights = {k: v.detach().numpy().copy() for k, v in agent.state_dict().items()}
    return messages.weights_msg(weights, version, agent.config_json())


def test_learner_loss_holds_then_acts_on_fresh_weights_or_acts_on_the_last(tmp_path, wait_for):
    """The twin graph with an actor fed weights by hand: `hold` ends the episode (committed, outcome
    learner_lost) and nothing moves until new weights come; `act` keeps stepping; diagnostics say which."""
    rig = load_rig("twin_panda")
    spec = GraphSpec(rig=rig, nodes=("twin", "arm", "teleop", "actor", "recorder"), obs_mode="state",
                     operator="never", store=tmp_path / "episodes.zarr", time_scale=3.0)
    with Graph(spec) as graph:
        actor, recorder = graph.node("actor"), graph.node("recorder")
        agent = SACAgent(graph.observation_space(), spaces.action_space(rig).shape[0], SACConfig(hidden_dims=(16,)))
        learner = graph.plain_node("fake_learner")
        weights = learner.create_publisher(UInt8MultiArray, "learner/weights", qos.LATCHED)
        statuses: dict[str, DiagnosticStatus] = {}
        learner.create_subscription(
            DiagnosticArray, "diagnostics", lambda msg: statuses.update({s.name: s for s in msg.status}), qos.COMMAND
        )
        poses: list[np.ndarray] = []
        learner.create_subscription(PoseStamped, "arm/tcp_pose", lambda m: poses.append(messages.pose_array(m)),
                                    qos.SENSOR)
        graph.spinners.add(learner)
        weights.publish(_weights_msg(agent, 0))
        assert wait_for(lambda: actor.counters["transitions"] >= 5, timeout_s=60), actor.counters

        actor.learner_lost(hold=True)
        assert wait_for(lambda: actor.counters["holding_for_learner"] >= 3, timeout_s=30), actor.counters
        assert actor.episode_results[-1]["outcome"] == LEARNER_LOST
        assert wait_for(lambda: recorder.committed == 1, timeout_s=10)
        held_transitions, held_from = actor.counters["transitions"], len(poses)
        assert wait_for(lambda: actor.counters["holding_for_learner"] >= 20 and len(poses) > held_from + 10, 30)
        assert actor.counters["transitions"] == held_transitions  # no step, no new episode while held
        assert np.ptp(np.array(poses[held_from:])[:, :3], axis=0).max() < 1e-3  # and the arm stays put
        assert wait_for(lambda: statuses.get("actor") is not None and "holding" in statuses["actor"].message, 10)
        assert statuses["actor"].level == DiagnosticStatus.WARN

        weights.publish(_weights_msg(agent, 1))  # a restarted learner's first weights
        assert wait_for(lambda: actor.counters["transitions"] >= held_transitions + 5, timeout_s=60)
        assert actor.learner_present and actor.episode == 2

        actor.learner_lost(hold=False)
        acting_from = actor.counters["transitions"]
        assert wait_for(lambda: actor.counters["transitions"] >= acting_from + 10, timeout_s=60)
        assert not actor.learner_present and actor.weights_version == 1
        assert wait_for(lambda: "acting on" in statuses["actor"].message, timeout_s=10)
    assert EpisodeStore(tmp_path / "episodes.zarr").n_episodes >= 1


def test_a_camera_policy_steps_when_every_camera_has_a_new_frame_and_not_faster_than_the_control_rate(ros, wait_for):
    """The control period is 1 s here so that the timer (the deadline, 1.25 periods after a step) stays out of the
    way: every step below is one a frame arrival started."""
    base = load_rig("twin_panda")
    rig = base.model_copy(update={"arm": base.arm.model_copy(update={"control_rate_hz": 1.0}),
                                  "safety": base.safety.model_copy(update={"staleness_s": 5.0})})
    cameras = ("images/front", "images/wrist")
    space = observation_space_of(GraphSpec(rig=rig, nodes=(), obs_mode="pixels"))
    assert set(space.spaces) == {*KEYS[:-1], *cameras}
    small = EncoderConfig(channels=(8, 8), kernels=(4, 3), strides=(4, 2), groups=4, latent_dim=8)
    agent = SACAgent(space, 4, SACConfig(hidden_dims=(16, 16), encoder=small))
    actor = ros.add(ActorNode(rig, "eval", tuple(space.spaces), policy=SACPolicy(agent, deterministic=True),
                              context=ros.context))
    feeder = ros.node("feeder", rig.namespace)
    pubs = state_publishers(feeder)
    frames = {k: feeder.create_publisher(Image, f"cameras/{k.split('/')[1]}/image_raw", qos.SENSOR) for k in cameras}
    feeder.create_service(Trigger, "arm/reset", lambda request, response: Trigger.Response(success=True))
    ros.start()
    # Discovery: the feeder's messages are best effort, so any sent before the actor subscribed would be lost.
    assert wait_for(lambda: all(pub.get_subscription_count() > 0 for pub in (*pubs.values(), *frames.values())),
                    timeout_s=10)
    now = lambda: actor.get_clock().now().nanoseconds * 1e-9  # noqa: E731
    image = np.zeros((128, 128, 3), np.uint8)

    def send(keys, stamp: float) -> None:
        publish_state(pubs, now())
        for key in keys:
            frames[key].publish(messages.image_msg(image, stamp, key.split("/")[1]))

    assert wait_for(lambda: actor._phase == "running", timeout_s=10)
    # A stamp is whole nanoseconds: compare times as they come back from one, not as the float that was sent.
    stamped = lambda seconds: messages.from_stamp(messages.to_stamp(seconds))  # noqa: E731
    start = now()
    send(cameras, start)
    assert wait_for(lambda: any(t.oldest_input == stamped(start) for t in actor.timing), timeout_s=5)
    steps = len(actor.timing)
    send(cameras[:1], start + 1.0)  # one camera has a newer frame, the other not yet: no step
    time.sleep(0.3)
    assert len(actor.timing) == steps
    send(cameras[1:], start + 1.0)  # now both: a step, on these frames
    assert wait_for(lambda: len(actor.timing) == steps + 1, timeout_s=0.9)
    assert actor.timing[-1].oldest_input == stamped(start + 1.0)
    assert actor.timing[-1].episode_step == actor.timing[-2].episode_step + 1  # one episode, consecutive steps
    send(cameras, start + 1.3)  # a new set 0.3 periods after the last: too soon
    time.sleep(0.3)
    assert len(actor.timing) == steps + 1
