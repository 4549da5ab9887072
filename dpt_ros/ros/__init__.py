"""Thin rclpy shell around the core: message conversions, parameters, nodes."""
