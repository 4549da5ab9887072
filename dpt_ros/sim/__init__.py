"""Synthetic scenes for tests, the demo and sample data: a ray-cast scene and a LiDAR simulator. Only tools and tests import it."""
