"""Conversions between numpy records and ROS 2 messages: exact round trips, typed records."""

import numpy as np
import pytest

from tether.config import load_rig
from tether.robot_ws import messages
from tether.types import Transition


def test_stamp_round_trip():
    for seconds in (0.0, 1.5, 1_700_000_123.123456789):
        assert messages.from_stamp(messages.to_stamp(seconds)) == pytest.approx(seconds, abs=1e-9)


def test_image_round_trip_and_encoding_check():
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    msg = messages.image_msg(image, 12.5, "front")
    assert (msg.width, msg.height, msg.step, msg.encoding) == (64, 48, 192, "rgb8")
    np.testing.assert_array_equal(messages.image_array(msg), image)
    msg.encoding = "bgr8"
    with pytest.raises(ValueError, match="front.*bgr8"):
        messages.image_array(msg)


def test_pose_twist_round_trip():
    pose = np.array([0.5, -0.1, 0.2, 0.0, 0.0, 0.3826834, 0.9238795])
    np.testing.assert_allclose(messages.pose_array(messages.pose_msg(pose, 1.0)), pose)
    twist = np.arange(6, dtype=float) / 10
    np.testing.assert_allclose(messages.twist_array(messages.twist_msg(twist, 1.0)), twist)


def test_action_velocity_round_trip_uses_the_rig_scale():
    rig = load_rig("twin_panda")
    action = np.array([0.5, -1.0, 0.25, 1.0], np.float32)
    velocity = messages.action_to_velocity(action, rig)
    np.testing.assert_allclose(velocity[:3], action[:3] * rig.arm.action_scale[0] / rig.control_dt)
    np.testing.assert_allclose(messages.velocity_to_action(velocity, 1.0, rig), action, atol=1e-6)
    huge = messages.velocity_to_action(np.full(6, 1e6), 5.0, rig)
    assert np.all(np.abs(huge) <= 1.0)


def test_transition_record_round_trip():
    rng = np.random.default_rng(1)
    obs = {"state/tcp_pose": rng.normal(size=7).astype(np.float32), "images/front": rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)}
    next_obs = {k: v + 1 for k, v in obs.items()}
    transition = Transition(obs, np.ones(4, np.float32), 1.0, next_obs, True, False, True, np.zeros(4, np.float32))
    decoded, header = messages.transition_from_msg(messages.transition_msg(transition, 3.25, episode=7, step=11, outcome="success"))
    assert header == {"stamp": 3.25, "episode": 7, "step": 11, "outcome": "success"}
    assert (decoded.reward, decoded.terminated, decoded.truncated, decoded.intervened) == (1.0, True, False, True)
    for key in obs:
        np.testing.assert_array_equal(decoded.obs[key], obs[key])
        np.testing.assert_array_equal(decoded.next_obs[key], next_obs[key])
    np.testing.assert_array_equal(decoded.policy_action, transition.policy_action)


def test_records_refuse_the_wrong_kind():
    weights = messages.weights_msg({"w": np.zeros(3, np.float32)}, 5, {"kind": "sac"})
    tensors, version, config = messages.weights_from_msg(weights)
    assert version == 5 and config == {"kind": "sac"} and tensors["w"].shape == (3,)
    with pytest.raises(ValueError, match="transition record: got kind 'weights'"):
        messages.transition_from_msg(weights)


def test_task_state_round_trip():
    state = {"cube_pos": np.array([1, 2, 3], np.float32), "cube_quat": np.array([0, 0, 0, 1], np.float32)}
    decoded = messages.task_state_from_msg(messages.task_state_msg(state))
    assert list(decoded) == ["cube_pos", "cube_quat"]
    for key in state:
        np.testing.assert_array_equal(decoded[key], state[key])


def test_camera_info_carries_the_calibrated_intrinsics_through_the_crop_and_resize() -> None:
    from tether.config import CameraConfig, CameraIntrinsics

    intrinsics = CameraIntrinsics(size=(640, 480), fx=600.0, fy=610.0, cx=330.0, cy=245.0,
                                  distortion=(0.1, -0.2, 0.001, 0.002, 0.05))
    camera = CameraConfig(name="front", backend="opencv", device=0, resolution=(640, 480), crop=(80, 0, 560, 480),
                          output_size=(128, 128), intrinsics=intrinsics)
    info = messages.camera_info_msg(camera, 3.0)
    scale = 128 / 480  # a 480x480 crop resized to 128x128
    assert (info.width, info.height, info.header.frame_id) == (128, 128, "front_optical_frame")
    assert np.allclose(info.k, [600 * scale, 0, (330 - 80) * scale, 0, 610 * scale, 245 * scale, 0, 0, 1])
    assert np.allclose(info.d, intrinsics.distortion) and np.allclose(info.p[:3], [600 * scale, 0, 250 * scale])
    # Uncalibrated: the field of view's focal length, the image centre.
    plain = messages.camera_info_msg(camera.model_copy(update={"intrinsics": None, "crop": None,
                                                                "output_size": (640, 480)}), 3.0)
    assert np.isclose(plain.k[4], 0.5 * 480 / np.tan(np.deg2rad(58.0) / 2)) and plain.k[2] == 320


def test_stamped_messages_name_the_ros_frames() -> None:
    assert messages.pose_msg(np.zeros(7), 1.0).header.frame_id == "base_link"
    assert messages.twist_msg(np.zeros(6), 1.0).header.frame_id == "base_link"
    assert messages.wrench_msg(np.zeros(6), 1.0).header.frame_id == "tcp"
