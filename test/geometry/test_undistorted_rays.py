"""Back-projection of raw images through the lens model: rays that project back onto their pixels."""

import cv2
import numpy as np
import pytest

from dpt_ros import errors as input_errors
from dpt_ros.errors import InputError
from dpt_ros.geometry.camera import LensDistortion, PinholeIntrinsics, lens_distortion
from dpt_ros.geometry.lidar_projection import project_points
from dpt_ros.geometry.pointcloud import back_project, build_point_cloud, ray_grid

WIDTH, HEIGHT = 64, 48
INTRINSICS = PinholeIntrinsics(fx=50.0, fy=52.0, cx=31.2, cy=24.7, width=WIDTH, height=HEIGHT)
K = np.array([[50.0, 0.0, 31.2], [0.0, 52.0, 24.7], [0.0, 0.0, 1.0]])
LENSES = [
    LensDistortion((-0.28, 0.07, 1e-3, -2e-3, 0.0), "plumb_bob"),  # a typical wide-angle barrel lens
    LensDistortion((0.12, -0.05, -5e-4, 8e-4, 0.01), "plumb_bob"),  # mild pincushion
    LensDistortion((0.5, -0.1, 1e-3, 1e-3, 0.02, 0.6, -0.05, 0.01), "rational_polynomial"),
]


@pytest.mark.parametrize("lens", LENSES, ids=lambda lens: f"{lens.model}{lens.coefficients[0]}")
def test_points_along_the_rays_project_back_onto_their_pixels(lens):
    depth = np.full((HEIGHT, WIDTH), 4.0, np.float32)
    xyz = back_project(depth, INTRINSICS, distortion=lens).reshape(-1, 3)
    finite = np.all(np.isfinite(xyz), axis=1)
    assert finite.mean() > 0.99
    projected = project_points(xyz[finite], np.eye(4), K, (WIDTH, HEIGHT), lens.coefficients, lens.model)
    assert len(projected) == finite.sum()  # nothing lost off the image or beyond the lens model
    u, v = np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT))
    pixels = np.stack([u.ravel(), v.ravel()], axis=1)[finite][projected.index]
    # float32 points of 4 m: the rays' float32 rounding (~1e-7 relative, x 50 px) dominates the 1e-3 px inversion
    np.testing.assert_allclose(np.stack([projected.u, projected.v], axis=1), pixels, atol=2e-3)


@pytest.mark.parametrize("lens", LENSES[:2], ids=["barrel", "pincushion"])
def test_rays_match_opencv_undistort_points(lens):
    x_per_z, y_per_z = ray_grid(INTRINSICS, lens, 1)
    u, v = np.meshgrid(np.arange(WIDTH, dtype=np.float64), np.arange(HEIGHT, dtype=np.float64))
    pixels = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
    reference = cv2.undistortPointsIter(pixels, K, np.asarray(lens.coefficients), None, None,
                                        (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12))  # fmt: skip
    np.testing.assert_allclose(x_per_z.ravel(), reference[:, 0, 0], atol=1e-6)  # float32 rays of |x| < 1
    np.testing.assert_allclose(y_per_z.ravel(), reference[:, 0, 1], atol=1e-6)


def test_pinhole_rays_are_the_plain_formula_and_grids_are_cached_read_only():
    x_per_z, y_per_z = ray_grid(INTRINSICS, None, 2)
    assert x_per_z.shape == (1, WIDTH // 2) and y_per_z.shape == (HEIGHT // 2, 1)
    np.testing.assert_allclose(x_per_z[0], (np.arange(0, WIDTH, 2) - 31.2) / 50.0, rtol=1e-6)
    assert ray_grid(INTRINSICS, LENSES[0], 1) is ray_grid(INTRINSICS, LENSES[0], 1)
    with pytest.raises(ValueError):
        ray_grid(INTRINSICS, LENSES[0], 1)[0][0, 0] = 1.0


def test_pixels_beyond_the_lens_model_become_nan_points_not_ghosts():
    fold = LensDistortion((-0.9, 0.0, 0.0, 0.0, 0.0), "plumb_bob")  # r(1 - 0.9 r^2) peaks at r = 0.61
    wide = PinholeIntrinsics(fx=20.0, fy=20.0, cx=31.5, cy=23.5, width=WIDTH, height=HEIGHT)  # corners at r = 1.96
    cloud = build_point_cloud(np.full((HEIGHT, WIDTH), 2.0, np.float32), wide, distortion=fold)
    points = cloud.data.view(np.float32).reshape(HEIGHT, WIDTH, 3)
    assert np.all(np.isnan(points[0, 0])) and np.all(np.isfinite(points[HEIGHT // 2, WIDTH // 2]))


def test_lens_distortion_from_camera_info():
    assert lens_distortion([0.0] * 5, "plumb_bob", "K") is None
    assert lens_distortion([], "", "K") is None
    assert lens_distortion([0.1] * 5, "plumb_bob", "P") is None  # rectified images have no distortion left
    assert lens_distortion([0.1, 0, 0, 0, 0], "plumb_bob", "K") == LensDistortion((0.1, 0.0, 0.0, 0.0, 0.0), "plumb_bob")
    for d, model, kind in (([0.1, 0.0, 0.0, 0.0], "equidistant", input_errors.UNSUPPORTED_DISTORTION),
                           ([0.1, 0.0, 0.0], "plumb_bob", input_errors.INVALID_CAMERA_INFO),
                           ([float("nan")] * 5, "plumb_bob", input_errors.INVALID_CAMERA_INFO)):  # fmt: skip
        with pytest.raises(InputError) as raised:
            lens_distortion(d, model, "K")
        assert raised.value.kind == kind
