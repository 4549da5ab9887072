"""Test-session guards that must run before any rclpy context exists, and the `ros` marker's check."""

import os
import random

import pytest

from support.environment import set_ros_test_environment

set_ros_test_environment(os.environ, random.randint(1, 100))

# A module that brings up rclpy in this process (directly or through the node harness) must be marked `ros`,
# so that `-m "not ros"` really leaves out every test that needs a DDS network.
_RCLPY_RUNTIME_NAMES = ("rclpy", "RosPeer", "NodeProcess", "DepthNodeUnderTest", "DepthNode", "SegmentationNode")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = {
        item.module.__name__
        for item in items
        if item.module is not None
        and any(name in vars(item.module) for name in _RCLPY_RUNTIME_NAMES)
        and item.get_closest_marker("ros") is None
    }
    if unmarked:
        raise pytest.UsageError(f"test modules that run rclpy need pytestmark = pytest.mark.ros: {sorted(unmarked)}")
