"""ROS 2 tests run real DDS graphs; each test gets its own domain (tests/conftest.py: ros_domain)."""

import pytest


@pytest.fixture(autouse=True)
def _own_ros_domain(ros_domain: int) -> int:
    return ros_domain
