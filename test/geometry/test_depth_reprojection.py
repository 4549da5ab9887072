"""A depth camera's image reprojected into the colour camera, against hand-computed pixels."""

import numpy as np
import pytest

from dpt_ros.geometry.camera import PinholeIntrinsics
from dpt_ros.geometry.depth_reprojection import reproject_depth
from dpt_ros.pipeline.image_codec import decode_depth_image, depth_to_16uc1_mm

# Depth camera: 5 x 4 pixels, fx = fy = 100, principal point (2, 1.5).
DEPTH_CAMERA = PinholeIntrinsics(fx=100.0, fy=100.0, cx=2.0, cy=1.5, width=5, height=4)
# Colour camera: 101 x 81 pixels, fx = fy = 200, principal point (50, 40).
COLOR_K = np.array([[200.0, 0.0, 50.0], [0.0, 200.0, 40.0], [0.0, 0.0, 1.0]])
COLOR_SIZE = (101, 81)


def _translation(x: float, y: float, z: float) -> np.ndarray:
    transform = np.eye(4)
    transform[:3, 3] = (x, y, z)
    return transform


def test_translated_depth_pixel_lands_on_the_hand_computed_colour_pixel():
    depth = np.full((4, 5), np.nan, dtype=np.float32)
    depth[1, 4] = 2.0  # u=4, v=1: x = (4 - 2) / 100 * 2 = 0.04, y = (1 - 1.5) / 100 * 2 = -0.01, z = 2
    # The depth camera sits 10 cm to the colour camera's right and 20 cm behind it:
    # colour point = (0.14, -0.01, 1.8): u = 200 * 0.14 / 1.8 + 50 = 65.56 -> 66, v = 200 * -0.01 / 1.8 + 40 = 38.89 -> 39
    sparse = reproject_depth(depth, DEPTH_CAMERA, _translation(0.1, 0.0, -0.2), COLOR_K, COLOR_SIZE)
    assert sparse.shape == (81, 101) and sparse.dtype == np.float32
    assert sparse[39, 66] == pytest.approx(1.8)
    assert np.count_nonzero(np.isfinite(sparse)) == 1


def test_rotated_depth_camera():
    # Depth camera rolled 180 degrees about the shared optical axis: colour (x, y, z) = (-x, -y, z).
    roll = np.diag([-1.0, -1.0, 1.0, 1.0])
    depth = np.full((4, 5), np.nan, dtype=np.float32)
    depth[3, 0] = 4.0  # x = (0 - 2) / 100 * 4 = -0.08, y = (3 - 1.5) / 100 * 4 = 0.06
    sparse = reproject_depth(depth, DEPTH_CAMERA, roll, COLOR_K, COLOR_SIZE)
    # colour point (0.08, -0.06, 4): u = 200 * 0.02 + 50 = 54, v = 200 * -0.015 + 40 = 37
    assert sparse[37, 54] == pytest.approx(4.0)
    assert np.count_nonzero(np.isfinite(sparse)) == 1


def test_nearest_wins_and_invalid_pixels_are_dropped():
    depth = np.zeros((4, 5), dtype=np.float32)  # 0 = no data
    depth[1, 2] = 3.0  # x = 0, y = (1 - 1.5) / 100 * 3 = -0.015
    depth[2, 2] = 5.0  # x = 0, y = (2 - 1.5) / 100 * 5 = 0.025
    depth[0, 0] = np.nan
    depth[3, 4] = -1.0
    sparse = reproject_depth(depth, DEPTH_CAMERA, np.eye(4), COLOR_K, COLOR_SIZE)
    # v = 200 * -0.005 + 40 = 39 and v = 200 * 0.005 + 40 = 41, both at u = 50
    assert sparse[39, 50] == pytest.approx(3.0) and sparse[41, 50] == pytest.approx(5.0)
    assert np.count_nonzero(np.isfinite(sparse)) == 2
    # A coarse colour camera (fx = fy = 20, centre (4, 4)): v = 3.9 and 4.1, one pixel (4, 4); 3 m is in front.
    coarse = reproject_depth(depth, DEPTH_CAMERA, np.eye(4), [[20.0, 0, 4.0], [0, 20.0, 4.0], [0, 0, 1]], (9, 9))
    assert coarse[4, 4] == pytest.approx(3.0)
    assert np.count_nonzero(np.isfinite(coarse)) == 1


def test_behind_and_outside_points_are_dropped():
    depth = np.full((4, 5), 1.0, dtype=np.float32)
    # 2 m in front of the depth camera, the colour camera looks the other way (yaw 180 degrees)
    yaw = np.diag([-1.0, 1.0, -1.0, 1.0])
    assert not np.isfinite(reproject_depth(depth, DEPTH_CAMERA, yaw, COLOR_K, COLOR_SIZE)).any()
    # shifted 10 m sideways: every point is outside the colour image
    assert not np.isfinite(reproject_depth(depth, DEPTH_CAMERA, _translation(10.0, 0, 0), COLOR_K, COLOR_SIZE)).any()


def test_same_camera_is_lossless():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 9.0, size=(4, 5)).astype(np.float32)
    k = np.array([[100.0, 0, 2.0], [0, 100.0, 1.5], [0, 0, 1]])
    assert np.array_equal(reproject_depth(depth, DEPTH_CAMERA, np.eye(4), k, (5, 4)), depth)


def test_16uc1_millimetres_end_to_end():
    depth_m = np.full((4, 5), np.nan, dtype=np.float32)
    depth_m[1, 4] = 2.0
    mm = depth_to_16uc1_mm(depth_m)
    decoded = decode_depth_image(mm.tobytes(), 5, 4, "16UC1", 10)
    sparse = reproject_depth(decoded, DEPTH_CAMERA, _translation(0.1, 0.0, -0.2), COLOR_K, COLOR_SIZE)
    assert sparse[39, 66] == pytest.approx(1.8)
