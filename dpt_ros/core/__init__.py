"""ROS-free core of dpt_ros: nothing under this package may import rclpy."""
