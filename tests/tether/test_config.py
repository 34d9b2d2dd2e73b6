"""Rig configs: the shipped rigs validate, and every kind of bad input is one clear line."""

from pathlib import Path

import pytest
import yaml

from tether.config import ConfigError, FrankaArm, TwinArm, load_rig, resolve_rig_path, rig_names


def write_rig(tmp_path: Path, data: dict, name: str = "rig.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def twin_rig_data() -> dict:
    return yaml.safe_load(resolve_rig_path("twin_panda").read_text())


def test_shipped_rigs_validate():
    assert set(rig_names()) >= {"twin_panda", "franka_realsense", "opencv_webcam"}
    assert isinstance(load_rig("twin_panda").arm, TwinArm)
    franka = load_rig("franka_realsense")
    assert isinstance(franka.arm, FrankaArm)
    assert [c.backend for c in franka.cameras] == ["realsense", "realsense"]
    assert load_rig("opencv_webcam").cameras[0].backend == "opencv"


def test_demo_rig_is_the_default_twin_with_a_narrower_start_and_shorter_episodes():
    default, demo = load_rig("twin_panda").model_dump(), load_rig("twin_panda_demo").model_dump()
    changed = {(section, key) for section in default if isinstance(default[section], dict)
               for key in default[section] if default[section][key] != demo[section][key]}
    assert changed == {("randomization", "object_xy"), ("randomization", "object_yaw"), ("task", "episode_length"),
                       ("teleop", "sticky_s")}
    assert demo["randomization"]["object_xy"] == {"low": -0.02, "high": 0.02}
    assert demo["task"]["episode_length"] < default["task"]["episode_length"]
    assert [c.name for c in load_rig("twin_panda_demo").cameras] == ["front", "wrist"]


def test_default_rig_is_the_twin_with_two_cameras():
    rig = load_rig()
    assert rig.name == "twin_panda"
    assert [c.name for c in rig.cameras] == ["front", "wrist"]
    assert rig.control_dt == pytest.approx(0.1)


def test_rig_given_as_path(tmp_path):
    path = write_rig(tmp_path, twin_rig_data())
    assert load_rig(path).name == "twin_panda"
    assert load_rig(str(path)).name == "twin_panda"


def assert_one_line(error: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_unknown_key_names_file_and_path(tmp_path):
    data = twin_rig_data()
    data["arm"]["max_speeed"] = 0.1
    path = write_rig(tmp_path, data)
    with pytest.raises(ConfigError) as error:
        load_rig(path)
    assert_one_line(error, str(path), "arm.twin.max_speeed", "Extra inputs are not permitted")


def test_wrong_type_quotes_the_value(tmp_path):
    data = twin_rig_data()
    data["arm"]["control_rate_hz"] = "fast"
    with pytest.raises(ConfigError) as error:
        load_rig(write_rig(tmp_path, data))
    assert_one_line(error, "control_rate_hz", "'fast'")


def test_out_of_range_value(tmp_path):
    data = twin_rig_data()
    data["safety"]["watchdog_s"] = -1
    with pytest.raises(ConfigError) as error:
        load_rig(write_rig(tmp_path, data))
    assert_one_line(error, "safety.watchdog_s", "greater than 0", "-1")


def test_inverted_workspace_box(tmp_path):
    data = twin_rig_data()
    data["arm"]["workspace"] = {"low": [0.7, -0.2, 0.0], "high": [0.3, 0.2, 0.4]}
    with pytest.raises(ConfigError) as error:
        load_rig(write_rig(tmp_path, data))
    assert_one_line(error, "arm.twin.workspace", "x: low 0.7 must be below high 0.3")


def test_crop_outside_capture(tmp_path):
    data = twin_rig_data()
    data["cameras"][0]["crop"] = [0, 0, 200, 100]
    with pytest.raises(ConfigError) as error:
        load_rig(write_rig(tmp_path, data))
    assert_one_line(error, "cameras.0", "must lie inside the 128x128 capture")


def test_unknown_backend(tmp_path):
    data = twin_rig_data()
    data["arm"]["backend"] = "ur5"
    with pytest.raises(ConfigError) as error:
        load_rig(write_rig(tmp_path, data))
    assert_one_line(error, "arm", "'ur5'")


def test_missing_required_field(tmp_path):
    data = yaml.safe_load(resolve_rig_path("franka_realsense").read_text())
    del data["arm"]["host"]
    with pytest.raises(ConfigError) as error:
        load_rig(write_rig(tmp_path, data))
    assert_one_line(error, "arm.franka.host", "Field required")


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_rig(tmp_path / "absent.yaml")
    assert_one_line(error, "absent.yaml", "not found")
    with pytest.raises(ConfigError) as error:
        load_rig("no_such_rig")
    assert_one_line(error, "no_such_rig", "twin_panda")


def test_invalid_yaml_and_duplicate_keys(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\narm: [unclosed\n")
    with pytest.raises(ConfigError) as error:
        load_rig(bad)
    assert_one_line(error, "bad.yaml", "invalid YAML")
    dup = tmp_path / "dup.yaml"
    dup.write_text("name: a\nname: b\narm: {backend: twin}\n")
    with pytest.raises(ConfigError) as error:
        load_rig(dup)
    assert_one_line(error, "dup.yaml", "line 2", "duplicate key 'name'")


def test_twin_camera_needs_pose_and_mjcf_must_exist(tmp_path):
    data = twin_rig_data()
    del data["cameras"][1]["pose"]
    with pytest.raises(ConfigError) as error:
        load_rig(write_rig(tmp_path, data))
    assert_one_line(error, "cameras.1", "a twin camera needs a pose")
    data = twin_rig_data()
    data["arm"]["model"] = "missing_robot.xml"
    with pytest.raises(ConfigError) as error:
        load_rig(write_rig(tmp_path, data, "mjcf.yaml"))
    assert_one_line(error, "arm.model", "missing_robot.xml")


@pytest.mark.parametrize(
    ("key", "value", "fragments"),
    [
        ("workspace", {"low": [0.3, -0.25, 0.0], "high": [0.7, 0.25, float("inf")]}, ("arm.twin.workspace.high.2", "finite")),
        ("workspace", {"low": [0.3, -0.25, 0.5], "high": [0.7, 0.25, 0.5]}, ("workspace", "z: low 0.5 must be below high 0.5")),
        ("home_joints", [float("nan"), -0.785, 0.0, -2.356, 0.0, 1.571, 0.785], ("arm.twin.home_joints.0", "finite")),
        ("home_joints", [0.0, -0.785, 0.0, -2.356, 0.0, 0.0, 0.785], ("home_joints", "joint 6: 0.0 is outside")),
        ("home_joints", [0.0, 2.5, 0.0, -2.356, 0.0, 1.571, 0.785], ("home_joints", "joint 2: 2.5 is outside")),
        ("action_scale", [float("inf"), 0.1], ("arm.twin.action_scale.0", "finite")),
        ("action_scale", [0.02, 0.0], ("action_scale", "must be positive")),
        ("max_linear_speed", 0.0, ("max_linear_speed", "greater than 0")),
        ("max_linear_speed", float("nan"), ("max_linear_speed", "finite")),
        ("max_angular_speed", 2.8, ("exceed what a twin arm can do", "2.5 rad/s")),
        ("control_rate_hz", float("inf"), ("control_rate_hz", "finite")),
    ],
)
def test_non_finite_and_out_of_range_arm_values_are_refused(tmp_path, key, value, fragments):
    data = twin_rig_data()
    data["arm"][key] = value
    with pytest.raises(ConfigError) as error:
        load_rig(write_rig(tmp_path, data))
    assert_one_line(error, "rig.yaml", *fragments)


def test_franka_speed_limits_stop_at_what_the_panda_can_do(tmp_path):
    data = yaml.safe_load(resolve_rig_path("franka_realsense").read_text())
    data["arm"]["max_angular_speed"] = 2.5
    assert isinstance(load_rig(write_rig(tmp_path, data)).arm, FrankaArm)  # the hardware's own figure is allowed
    data["arm"]["max_angular_speed"] = 2.6
    with pytest.raises(ConfigError) as error:
        load_rig(write_rig(tmp_path, data))
    assert_one_line(error, "arm.franka", "exceed what a franka arm can do (1.7 m/s, 2.5 rad/s)")


def test_non_finite_values_deeper_in_the_rig_are_refused(tmp_path):
    data = twin_rig_data()
    data["cameras"][0]["pose"]["pos"] = [0.5, float("-inf"), 0.4]
    with pytest.raises(ConfigError) as error:
        load_rig(write_rig(tmp_path, data))
    assert_one_line(error, "cameras.0.pose.pos.1", "finite")
    data = twin_rig_data()
    data["randomization"] = {"friction_scale": [0.5, float("nan")]}
    with pytest.raises(ConfigError) as error:
        load_rig(write_rig(tmp_path, data, "random.yaml"))
    assert_one_line(error, "random.yaml", "friction_scale")


def test_alias_bombs_and_oversized_files_are_refused_before_parsing(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    bomb.write_text("\n".join([*lines, "name: *a8", "arm: {backend: twin}"]) + "\n")
    with pytest.raises(ConfigError) as error:
        load_rig(bomb)
    assert_one_line(error, "bomb.yaml", "line 2", "alias '*a0' (rig files take no aliases)")
    assert len(str(error.value)) < 200
    big = tmp_path / "big.yaml"
    big.write_text(resolve_rig_path("twin_panda").read_text() + "#" * (1 << 20) + "\n")
    with pytest.raises(ConfigError) as error:
        load_rig(big)
    assert_one_line(error, "big.yaml", "over the 1048576 a rig file may have")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(ConfigError) as error:
        load_rig(binary)
    assert_one_line(error, "binary.yaml", "not UTF-8 text")


def test_network_is_closed_by_default_and_opened_only_by_the_rig(tmp_path):
    network = load_rig("twin_panda").network
    assert (network.discovery, network.static_peers, network.domain_id, network.security.enabled) == (
        "localhost", [], None, False)
    data = twin_rig_data()
    data["network"] = {"discovery": "subnet", "static_peers": ["10.0.0.2", "arm-pc.lab"], "domain_id": 7,
                       "security": {"enabled": True, "keystore": str(tmp_path)}}
    opened = load_rig(write_rig(tmp_path, data)).network
    assert (opened.discovery, opened.static_peers, opened.domain_id) == ("subnet", ["10.0.0.2", "arm-pc.lab"], 7)
    assert (opened.security.keystore, opened.security.enforce) == (tmp_path, True)


@pytest.mark.parametrize(
    ("network", "fragments"),
    [
        ({"discovery": "everywhere"}, ("network.discovery", "'off', 'localhost' or 'subnet'", "everywhere")),
        ({"static_peers": ["10.0.0.2;10.0.0.3"]}, ("network.static_peers.0", "pattern")),
        ({"static_peers": ["10.0.0.2", "10.0.0.2"]}, ("network.static_peers", "listed twice")),
        ({"domain_id": 233}, ("network.domain_id", "less than or equal to 232")),
        ({"domain_id": -1}, ("network.domain_id", "greater than or equal to 0")),
        ({"security": {"enabled": True}}, ("network.security", "needs a keystore directory")),
        ({"security": {"enabled": True, "keystore": "/k", "strategy": "x"}}, ("network.security.strategy", "Extra")),
        ({"range": "subnet"}, ("network.range", "Extra inputs are not permitted")),
    ],
)
def test_bad_network_sections_are_one_line_errors(tmp_path, network, fragments):
    data = twin_rig_data()
    data["network"] = network
    with pytest.raises(ConfigError) as error:
        load_rig(write_rig(tmp_path, data))
    assert_one_line(error, "rig.yaml", *fragments)
