"""Rosbag input/output (rosbags library, no rclpy): reading frames, transforms, writing sample bags."""
