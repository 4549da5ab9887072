"""dpt_train: KITTI fine-tuning and evaluation for dpt_ros models (ROS-free; never imports rclpy)."""
