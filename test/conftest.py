"""Test-session guards that must run before any rclpy context exists."""

import os
import random

# Fast DDS must only talk over loopback on shared machines (ROS_LOCALHOST_ONLY is ignored by Kilted),
# and parallel test runs must not see each other's nodes.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
