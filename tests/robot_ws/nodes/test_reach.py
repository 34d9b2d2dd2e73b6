"""The reach node judges the reach task on a rig without a twin: a target per reset, success from the
measured TCP, and the twin task's own state, so a policy sees the same goal-relative feature on both. The
"arm" is a test publisher of `arm/tcp_pose`."""

import numpy as np
import pytest
import torch
from geometry_msgs.msg import PoseStamped
from std_msgs.msg import Bool, Float32MultiArray, String

from tether import spaces
from tether.config import load_rig
from tether.policies.networks import EncoderConfig, ObservationEncoder
from tether.robot_ws import messages, qos
from tether.robot_ws.nodes.reach import ReachNode
from tether.sim2real.twin import make_env
from tether.sim2real.twin.rig import twin_rig
from tether.sim2real.twin.tasks import REACH_MARGIN, Reach


def reach_rig():
    rig = load_rig("franka_realsense")
    return rig.model_copy(update={"task": rig.task.model_copy(update={"name": "reach"})})


def test_reach_node_draws_a_target_per_reset_and_judges_success_from_the_tcp(ros, wait_for):
    rig = reach_rig()
    node = ros.add(ReachNode(rig, seed=3, context=ros.context))
    arm = ros.node("arm_stand_in", rig.namespace)
    pose_pub = arm.create_publisher(PoseStamped, "arm/tcp_pose", qos.SENSOR)
    events_pub = arm.create_publisher(String, "episode/events", qos.EVENTS)
    states, successes = [], []
    arm.create_subscription(Float32MultiArray, "twin/task_state", states.append, qos.SENSOR)
    arm.create_subscription(Bool, "twin/success", successes.append, qos.SENSOR)
    ros.start()

    def publish_tcp(position) -> None:
        pose = np.concatenate([position, [1.0, 0.0, 0.0, 0.0]])
        pose_pub.publish(messages.pose_msg(pose, arm.get_clock().now().nanoseconds * 1e-9))

    first = node.target.copy()
    low, high = np.array(rig.arm.workspace.low), np.array(rig.arm.workspace.high)
    assert np.all(first >= low + REACH_MARGIN) and np.all(first <= high - REACH_MARGIN)
    assert wait_for(lambda: bool(states) and np.allclose(messages.task_state_from_msg(states[-1])["target_pos"], first))

    far = first + np.array([0.0, 0.0, 3 * Reach.tolerance])
    assert wait_for(lambda: (publish_tcp(far), node.distance() is not None and node.distance() > Reach.tolerance)[1])
    assert wait_for(lambda: bool(successes) and not successes[-1].data)
    near = first + np.array([0.0, 0.5 * Reach.tolerance, 0.0])
    assert wait_for(lambda: (publish_tcp(near), bool(successes) and successes[-1].data)[1])

    events_pub.publish(String(data="reset"))
    assert wait_for(lambda: node.targets_drawn == 2)
    assert not np.allclose(node.target, first)
    assert wait_for(lambda: not successes[-1].data)  # the TCP has not reached the new target


def test_reach_node_refuses_another_task():
    with pytest.raises(ValueError, match=r"the reach node judges task 'reach', not 'pick_cube'"):
        ReachNode(load_rig("franka_realsense"))


def test_reach_node_publishes_the_twin_tasks_state_so_the_goal_relative_feature_is_the_same(ros, wait_for):
    """Given the same TCP and target, the rig's observation (arm's TCP + the node's task state) and the twin's give
    the policy the same state vector, whose goal-relative part is target minus TCP: the encoder computes it from
    the observation's own TCP, never from a TCP the node read at another time."""
    rig = reach_rig()
    env = make_env("reach", rig=twin_rig(rig))
    twin_obs, _ = env.reset(seed=0)
    node = ros.add(ReachNode(rig, seed=0, context=ros.context))
    node.target = env.unwrapped.sim.task.target(env.unwrapped.sim.model)  # the same target on both sides
    listener = ros.node("actor_stand_in", rig.namespace)
    states = []
    listener.create_subscription(Float32MultiArray, "twin/task_state", states.append, qos.SENSOR)
    ros.start()
    assert wait_for(lambda: bool(states))

    published, twin_state = messages.task_state_from_msg(states[-1]), env.unwrapped.sim.task_state()
    assert published.keys() == twin_state.keys() == Reach.state_dims.keys()
    for key, value in twin_state.items():
        assert published[key].shape == value.shape and published[key].dtype == value.dtype
        np.testing.assert_array_equal(published[key], value)
    rig_obs = {**twin_obs, **{spaces.STATE + k: v for k, v in published.items()}}

    encoder = ObservationEncoder(env.observation_space, EncoderConfig(normalize_state=False))
    vectors = [encoder.split({k: torch.as_tensor(v)[None] for k, v in obs.items()})[1][0] for obs in (twin_obs, rig_obs)]
    torch.testing.assert_close(vectors[0], vectors[1])
    relative = twin_obs["state/target_pos"] - twin_obs[spaces.TCP_POSE][:3]
    np.testing.assert_allclose(vectors[1][-6:-3].numpy(), relative, atol=1e-6)  # then its near-field squashing
    env.close()
