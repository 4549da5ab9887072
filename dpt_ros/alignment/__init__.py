"""Metric depth from sparse LiDAR: robust scale/shift fits, the temporal filter, the per-frame LiDAR aligner."""
