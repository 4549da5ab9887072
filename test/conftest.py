"""Test-session guards that must run before any rclpy context exists."""

import os
import random

# Fast DDS must only talk over loopback on shared machines (ROS_LOCALHOST_ONLY is ignored by Kilted),
# and parallel test runs must not see each other's nodes.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))


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
