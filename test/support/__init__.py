"""Shared test support: the rclpy node harness, training fixtures, fake engines."""
