"""DDS security from the rig, on the Fast DDS that tether installs from PyPI.

That build has no DDS security (it was compiled without Fast DDS's SECURITY option; see
docs/ros2.md, Network and security), so a rig that enables security must stop with one line
saying so, through the real CLI, rather than run unsecured. The keystore here is bare folders:
the middleware refuses before it reads a certificate.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import rclpy
import yaml

from tether.config import NetworkConfig, resolve_rig_path
from tether.robot_ws.network import NetworkError, init_context


def secured_rig(tmp_path: Path, enclave: str) -> Path:
    keystore = tmp_path / "keystore"
    (keystore / "enclaves" / enclave.lstrip("/")).mkdir(parents=True)
    data = yaml.safe_load(resolve_rig_path("twin_panda").read_text())
    data["network"] = {"discovery": "subnet", "security": {"enabled": True, "keystore": str(keystore)}}
    path = tmp_path / "secured.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_secured_rig_stops_with_one_line_naming_the_missing_security_support(tmp_path, ros_domain):
    rig = secured_rig(tmp_path, "/tether/twin")
    tether = Path(sys.executable).with_name("tether")
    result = subprocess.run(
        [str(tether), "up", "--rig", str(rig), "--nodes", "twin", "--out", str(tmp_path / "up")],
        capture_output=True, text=True, timeout=120, env=os.environ | {"COLUMNS": "60"},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip().splitlines()[-1].endswith(
        "DDS security (enclave /tether/twin): This Fast DDS version doesn't have the security libraries"
    ), result.stderr
    assert "graph up" not in result.stdout
    assert not (tmp_path / "up").exists()


def test_a_keystore_without_the_process_enclave_is_named(tmp_path):
    keystore = secured_rig(tmp_path, "/tether/arm").parent / "keystore"
    network = NetworkConfig(discovery="subnet", security={"enabled": True, "keystore": keystore})
    with pytest.raises(NetworkError, match=f"^network.security.keystore: {keystore} has no enclave /tether/graph$"):
        init_context(rclpy.Context(), network, "/tether/graph")
    with pytest.raises(NetworkError, match="is not a directory"):
        init_context(rclpy.Context(), network.model_copy(update={"security": network.security.model_copy(
            update={"keystore": tmp_path / "missing"})}), "/tether/arm")
