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
    assert rig.arm.action_dim == 4
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
