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


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """How many tests on the real recordings (marked `realdata`) ran, and why the others did not."""
    outcomes: dict[str, int] = {}
    reasons: set[str] = set()
    for category in ("passed", "failed", "error", "skipped", "xfailed", "xpassed"):
        for report in terminalreporter.stats.get(category, []):  # passing setup/teardown phases are not listed
            if "realdata" not in getattr(report, "keywords", {}):
                continue
            outcomes[category] = outcomes.get(category, 0) + 1
            if report.skipped and isinstance(report.longrepr, tuple):
                reasons.add(str(report.longrepr[2]).removeprefix("Skipped: "))
    if not outcomes:
        return
    ran = sum(n for category, n in outcomes.items() if category != "skipped")
    details = ", ".join(f"{n} {category}" for category, n in sorted(outcomes.items()))
    terminalreporter.write_line(f"real-data tests: {ran} ran ({details})")
    for reason in sorted(reasons):
        terminalreporter.write_line(f"  skipped: {reason}")
