"""ROS 2 tests run real DDS graphs; each test gets its own domain so parallel runs never cross-talk."""

import os
import random

import pytest


@pytest.fixture(autouse=True)
def ros_domain(monkeypatch: pytest.MonkeyPatch) -> int:
    domain = random.Random(os.getpid() * 1000 + random.randrange(1000)).randrange(1, 100)
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return domain
