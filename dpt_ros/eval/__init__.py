"""Evaluation: KITTI depth metrics, held-out LiDAR scoring, segmentation metrics (shared with the trainer)."""
