"""LiDAR -> camera projection against hand-computed pixels, OpenCV's projectPoints and an exact ray-cast scene."""

import warnings

import cv2
import numpy as np
import pytest

from dpt_ros import project_lidar, project_points
from dpt_ros.geometry.lidar_projection import keep_nearest_per_pixel, rasterize_depth
from dpt_ros.geometry.transforms import OPTICAL_FROM_LIDAR_ROTATION
from dpt_ros.geometry.transforms import make_transform as pose
from dpt_ros.sim.scene import render_depth, spinning_lidar_scan, street_scene

# fx=100, fy=120, cx=50, cy=40 for a 101 x 81 (width x height) image
K = np.array([[100.0, 0.0, 50.0], [0.0, 120.0, 40.0], [0.0, 0.0, 1.0]])
SIZE = (101, 81)
IDENTITY = np.eye(4)


def test_pinhole_pixel_and_depth_match_hand_computation():
    # camera frame point (1, 0.5, 2): u = 100 * 0.5 + 50 = 100, v = 120 * 0.25 + 40 = 70
    depth = project_lidar(np.array([[1.0, 0.5, 2.0]]), IDENTITY, K, SIZE)
    assert depth.shape == (81, 101) and depth.dtype == np.float32
    assert depth[70, 100] == pytest.approx(2.0)
    assert np.count_nonzero(np.isfinite(depth)) == 1


def test_extrinsic_maps_lidar_axes_to_optical_axes():
    # LiDAR 0.2 m above the camera (optical y points down): optical point = R * p + (0, 0.2, 0)
    T_cam_lidar = pose(OPTICAL_FROM_LIDAR_ROTATION, (0.0, 0.2, 0.0))
    # 5 m forward, 1 m right (lidar y = -1), 0.5 m up -> optical (1, -0.5 + 0.2, 5)
    projected = project_points(np.array([[5.0, -1.0, 0.5]]), T_cam_lidar, K, SIZE)
    assert projected.u[0] == pytest.approx(100.0 * 1.0 / 5.0 + 50.0)  # 70
    assert projected.v[0] == pytest.approx(120.0 * -0.3 / 5.0 + 40.0)  # 32.8
    assert (projected.col[0], projected.row[0]) == (70, 33)
    assert projected.depth[0] == pytest.approx(5.0)  # z along the optical axis, not range (5.1 m)


def test_plumb_bob_distortion_matches_hand_computation():
    D = [-0.1, 0.01, 0.001, -0.002, 0.001]  # k1 k2 p1 p2 k3
    # normalised (0.2, 0.1): r2 = 0.05, radial = 1 - 0.005 + 0.000025 + 0.000000125 = 0.995025125
    # x_d = 0.2 * radial + 2 p1 x y + p2 (r2 + 2 x^2) = 0.199005025 + 0.00004 - 0.00026 = 0.198785025
    # y_d = 0.1 * radial + p1 (r2 + 2 y^2) + 2 p2 x y = 0.0995025125 + 0.00007 - 0.00008 = 0.0994925125
    projected = project_points(np.array([[0.8, 0.4, 4.0]]), IDENTITY, K, SIZE, D=D, distortion_model="plumb_bob")
    assert projected.u[0] == pytest.approx(100.0 * 0.198785025 + 50.0, abs=1e-9)
    assert projected.v[0] == pytest.approx(120.0 * 0.0994925125 + 40.0, abs=1e-9)


@pytest.mark.parametrize(
    "model, D",
    [
        ("plumb_bob", [-0.28, 0.07, 0.0012, -0.0008, -0.008]),
        ("rational_polynomial", [0.5, -0.02, 0.0009, 0.0004, 0.001, 0.85, 0.05, 0.003]),
    ],
)
def test_distortion_matches_opencv_project_points(model, D):
    rng = np.random.default_rng(3)
    points = np.column_stack((rng.uniform(-0.5, 0.5, 500), rng.uniform(-0.4, 0.4, 500), np.ones(500)))
    points *= rng.uniform(1.0, 30.0, (500, 1))
    big_K = np.array([[400.0, 0.0, 320.0], [0.0, 410.0, 240.0], [0.0, 0.0, 1.0]])
    projected = project_points(points, IDENTITY, big_K, (640, 480), D=D, distortion_model=model)
    assert len(projected) > 400
    reference, _ = cv2.projectPoints(points[projected.index], np.zeros(3), np.zeros(3), big_K, np.array(D))
    np.testing.assert_allclose(projected.u, reference[:, 0, 0], atol=1e-6)
    np.testing.assert_allclose(projected.v, reference[:, 0, 1], atol=1e-6)


def test_points_beyond_the_lens_models_valid_radius_do_not_fold_back_into_the_image():
    # k1 = -0.5: r * (1 - 0.5 r^2) peaks at r = 0.816; a point at r = 1.5 would land at r_d = -0.19 (inside!)
    D = [-0.5, 0.0, 0.0, 0.0, 0.0]
    points = np.array([[0.5, 0.0, 1.0], [1.5, 0.0, 1.0]])
    projected = project_points(points, IDENTITY, K, SIZE, D=D)
    assert projected.index.tolist() == [0]


def test_z_buffer_keeps_the_nearest_point_per_pixel():
    ray = np.array([0.1, -0.05, 1.0])  # all on one ray through pixel (60, 34)
    points = np.array([ray * 3.0, ray * 1.0, [0.0, 0.0, 7.0], ray * 2.0, ray * 1.5])
    depth = project_lidar(points, IDENTITY, K, SIZE)
    assert depth[34, 60] == pytest.approx(1.0)
    assert depth[40, 50] == pytest.approx(7.0)
    assert np.count_nonzero(np.isfinite(depth)) == 2
    nearest = keep_nearest_per_pixel(project_points(points, IDENTITY, K, SIZE), SIZE)
    assert sorted(nearest.index.tolist()) == [1, 2]


def test_behind_camera_non_finite_and_out_of_range_points_are_dropped_without_warnings():
    points = np.array(
        [
            [0.0, 0.0, 2.0],  # kept
            [0.0, 0.0, -2.0],  # behind: x/z would put it at the image centre
            [0.0, 0.0, 0.0],  # "no return" zeros, below min_range
            [np.nan, 0.0, 3.0],
            [0.0, np.inf, 3.0],
            [-np.inf, 0.0, 3.0],
            [0.0, 0.0, 1e200],  # squares overflow to inf
            [0.0, 0.0, 150.0],  # beyond max_range
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        projected = project_points(points, IDENTITY, K, SIZE, max_range=100.0)
    assert projected.index.tolist() == [0]


def test_range_limits_apply_to_distance_from_the_lidar_not_camera_depth():
    # LiDAR 3 m behind the camera: a point 4 m ahead of the LiDAR is 1 m deep in the camera
    T_cam_lidar = pose(np.eye(3), (0.0, 0.0, -3.0))
    points = np.array([[0.0, 0.0, 4.0], [0.0, 0.0, 2.0]])  # second is 1 m *behind* the camera
    projected = project_points(points, T_cam_lidar, K, SIZE, min_range=3.5, max_range=4.5)
    assert projected.index.tolist() == [0]
    assert projected.depth[0] == pytest.approx(1.0)
    assert project_points(points, T_cam_lidar, K, SIZE, min_range=4.5, max_range=9.0).index.size == 0


def test_pixel_bounds_follow_pixel_centre_convention():
    # u = 100 x / z + 50: x/z = -0.504 -> u = -0.4 (col 0, kept); x/z = -0.506 -> u = -0.6 (dropped)
    # v at the far edge: v = 80.4 -> row 80 (kept); v = 80.6 -> row 81 (dropped, height 81)
    points = np.array([[-0.504, 0.0, 1.0], [-0.506, 0.0, 1.0], [0.0, 40.4 / 120.0, 1.0], [0.0, 40.6 / 120.0, 1.0]])
    projected = project_points(points, IDENTITY, K, SIZE)
    assert projected.index.tolist() == [0, 2]
    assert projected.col.tolist() == [0, 50] and projected.row.tolist() == [40, 80]


def test_image_size_is_width_then_height():
    depth = project_lidar(np.array([[0.0, 0.0, 1.0]]), IDENTITY, K, (200, 50))
    assert depth.shape == (50, 200)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"K": np.eye(2)}, "K must have 9"),
        ({"T_cam_lidar": pose(np.eye(3), (1.0, 2.0, 3.0)).T}, "bottom row"),
        ({"T_cam_lidar": np.diag([1.0, 1.0, -1.0, 1.0])}, "proper rotation"),
        ({"distortion_model": "equidistant", "D": [0.1, 0, 0, 0]}, "unsupported distortion_model"),
        ({"D": [0.1, 0.0, 0.0, 0.0]}, "takes 5 coefficients"),
        ({"image_size": (0, 10)}, "image_size"),
        ({"min_range": 5.0, "max_range": 1.0}, "min_range"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, message):
    arguments = {"points_xyz": np.ones((3, 3)), "T_cam_lidar": IDENTITY, "K": K, "image_size": SIZE, **kwargs}
    with pytest.raises(ValueError, match=message):
        project_lidar(**arguments)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        project_lidar(np.ones((3, 4)), IDENTITY, K, SIZE)


def test_spinning_scan_projects_onto_the_exact_rendered_depth():
    big_K = np.array([[250.0, 0.0, 159.5], [0.0, 250.0, 119.5], [0.0, 0.0, 1.0]])
    scene = street_scene()
    truth = render_depth(scene, big_K, (320, 240))
    T_cam_lidar = pose(OPTICAL_FROM_LIDAR_ROTATION, (0.0, -0.3, -0.1))
    cloud = spinning_lidar_scan(scene, T_cam_lidar, n_beams=32, n_azimuth=1024)
    sparse = rasterize_depth(project_points(cloud, T_cam_lidar, big_K, (320, 240)), (320, 240))
    hit = np.isfinite(sparse)
    assert np.count_nonzero(hit) > 2000
    relative_error = np.abs(sparse[hit] - truth[hit]) / truth[hit]
    # points sit anywhere inside their pixel (slanted ground); only parallax edge leaks exceed 5 %
    assert np.median(relative_error) < 2e-3
    assert np.mean(relative_error > 0.05) < 0.03


@pytest.mark.parametrize("model", ["", "equidistant", "plumb_bob"])
def test_zero_or_empty_distortion_means_none_whatever_the_model_name(model):
    for D in (None, [], [0.0] * 5):
        projected = project_points(np.array([[1.0, 0.5, 2.0]]), IDENTITY, K, SIZE, D=D, distortion_model=model)
        assert (projected.u[0], projected.v[0]) == (100.0, 70.0)


def test_z_buffer_matches_a_brute_force_reference_on_crowded_pixels():
    rng = np.random.default_rng(11)
    points = np.column_stack((rng.uniform(-0.2, 0.2, 3000), rng.uniform(-0.15, 0.15, 3000), np.ones(3000)))
    points *= rng.uniform(1.0, 20.0, (3000, 1))  # ~3000 points on a 41 x 37 pixel patch: many per pixel
    projected = project_points(points, IDENTITY, K, SIZE)
    nearest = {}
    for col, row, depth in zip(projected.col, projected.row, projected.depth):
        nearest[(row, col)] = min(depth, nearest.get((row, col), np.inf))
    image = rasterize_depth(projected, SIZE)
    assert np.count_nonzero(np.isfinite(image)) == len(nearest) < len(projected)
    for (row, col), depth in nearest.items():
        assert image[row, col] == depth
