"""LiDAR-only densification: exact where the answer is known, and IP-Basic's steps checked by hand."""

import numpy as np
import pytest

from dpt_ros.eval.densify import CLIPPED_DEPTH, ip_basic_fill, nearest_neighbour_fill


def test_nearest_neighbour_takes_the_nearest_lidar_pixel():
    sparse = np.full((12, 12), np.nan, np.float32)
    sparse[0, 0], sparse[10, 10] = 4.0, 20.0
    filled = nearest_neighbour_fill(sparse)
    assert filled[1, 2] == 4.0 and filled[9, 7] == 20.0 and filled[4, 4] == 4.0 and filled[11, 11] == 20.0
    assert np.isnan(nearest_neighbour_fill(np.full((3, 3), np.nan))).all()
    assert np.isnan(ip_basic_fill(np.zeros((3, 3)))).all()  # 0 means no point, as in KITTI PNGs


def test_both_are_exact_on_a_fronto_parallel_wall():
    """A wall facing the camera has one depth everywhere: any sparse sampling of it fills back exactly."""
    rng = np.random.default_rng(0)
    sparse = np.full((60, 80), np.nan, np.float32)
    rows, cols = rng.integers(0, 60, 150), rng.integers(0, 80, 150)
    sparse[rows, cols] = 12.5
    assert np.all(nearest_neighbour_fill(sparse) == 12.5)
    np.testing.assert_allclose(ip_basic_fill(sparse), 12.5, rtol=1e-6)  # float32 blur of a constant


def test_ip_basic_keeps_the_near_surface_and_extends_columns_to_the_top():
    """Depth inversion makes the dilation prefer near points; rows above the highest LiDAR row take it."""
    sparse = np.full((40, 40), np.nan, np.float32)
    sparse[20::4, :] = 30.0  # far background on scan lines (every 4th row) of the lower half
    sparse[20::4, 14:27] = 5.0  # a near object on the same scan lines
    filled = ip_basic_fill(sparse)
    np.testing.assert_allclose(filled[22:31, 18:23], 5.0, rtol=1e-6)  # between the lines: the near surface
    assert filled[30, 5] == pytest.approx(30.0, rel=1e-6)
    np.testing.assert_allclose(filled[:15, :8], 30.0, rtol=1e-6)  # extended to the top of the image
    far = np.full((5, 5), 250.0, np.float32)
    np.testing.assert_allclose(ip_basic_fill(far), CLIPPED_DEPTH, rtol=1e-6)  # clipped, documented
