"""Project LiDAR points into a camera image: sparse metric depth with a z-buffer.

Conventions (the same as ROS `sensor_msgs/CameraInfo` and OpenCV):
- The camera frame is the *optical* frame: x right, y down, z forward. Depth is z (along the optical
  axis), not the Euclidean range.
- Pixel coordinates (u, v) have integer values at pixel *centres*; pixel (col, row) covers
  u in [col - 0.5, col + 0.5). The image has `width` columns and `height` rows.
- `image_size` is always `(width, height)` like `CameraInfo.width/height` and OpenCV's `cv2.Size`,
  NOT numpy's `(rows, cols)`; returned images have numpy shape `(height, width)`.
- Distortion coefficients follow OpenCV's order: plumb_bob = (k1, k2, p1, p2, k3);
  rational_polynomial = (k1, k2, p1, p2, k3, k4, k5, k6). Pass `D=None` (or an empty/zero D) for
  rectified images.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Number of coefficients each supported `CameraInfo.distortion_model` takes.
DISTORTION_COEFFICIENT_COUNTS = {"plumb_bob": 5, "rational_polynomial": 8}

# Distortion models are only evaluated up to this normalised radius r = tan(angle off axis); 10 is 84 degrees,
# beyond any pinhole-type lens. Past the first radius where the radial mapping stops increasing, a polynomial
# model folds far off-axis points back into the image as ghosts, so those points are dropped.
_MAX_NORMALISED_RADIUS = 10.0
# Fixed-point steps of undistort_normalised: OpenCV's undistortPoints default is 5; the inversion is
# verified afterwards, and 20 reach 1e-9 for the plumb_bob / rational lenses of real cameras.
UNDISTORT_ITERATIONS = 20
_RADIUS_GRID_STEPS = 4000

# Points closer to the image plane than this (metres) cannot be projected stably.
_MIN_CAMERA_Z = 1e-6


@dataclass(frozen=True)
class ProjectedPoints:
    """LiDAR points that land inside the image, one entry per point (N entries).

    u, v:     (N,) sub-pixel coordinates (pixel centres at integers), in the cloud's float precision.
    col, row: (N,) int64 pixel indices, 0 <= col < width, 0 <= row < height.
    depth:    (N,) float32 metres along the optical axis, > 0.
    index:    (N,) int64 position of each point in the `points_xyz` passed to `project_points`.
    """

    u: np.ndarray
    v: np.ndarray
    col: np.ndarray
    row: np.ndarray
    depth: np.ndarray
    index: np.ndarray

    def __len__(self) -> int:
        return int(self.depth.shape[0])

    def select(self, keep: np.ndarray) -> ProjectedPoints:
        """The subset chosen by a boolean mask or an index array over the N points."""
        return ProjectedPoints(
            u=self.u[keep],
            v=self.v[keep],
            col=self.col[keep],
            row=self.row[keep],
            depth=self.depth[keep],
            index=self.index[keep],
        )


def camera_matrix(K: np.ndarray | list[float]) -> np.ndarray:
    """K as a 3x3 float64 matrix; accepts 3x3 or the 9 row-major values of `CameraInfo.k`."""
    matrix = np.asarray(K, dtype=np.float64)
    if matrix.size != 9:
        raise ValueError(f"K must have 9 values (3x3), got shape {matrix.shape}")
    matrix = matrix.reshape(3, 3)
    if not np.all(np.isfinite(matrix)) or matrix[0, 0] <= 0 or matrix[1, 1] <= 0:
        raise ValueError(f"K must be finite with positive focal lengths, got {matrix.tolist()}")
    return matrix


def rigid_transform(T: np.ndarray | list[float], name: str = "T_cam_lidar") -> np.ndarray:
    """A 4x4 float64 rigid transform; accepts 4x4 or 16 row-major values.

    Raises ValueError unless the bottom row is (0, 0, 0, 1) and the rotation block is orthonormal with
    determinant +1 (which catches a column-major matrix passed as row-major).
    """
    matrix = np.asarray(T, dtype=np.float64)
    if matrix.size != 16:
        raise ValueError(f"{name} must have 16 values (4x4), got shape {matrix.shape}")
    matrix = matrix.reshape(4, 4)
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{name} has non-finite entries")
    if not np.allclose(matrix[3], (0.0, 0.0, 0.0, 1.0), atol=1e-9):
        raise ValueError(f"{name} bottom row must be (0, 0, 0, 1), got {matrix[3].tolist()} (row-major expected)")
    rotation = matrix[:3, :3]
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-4) or np.linalg.det(rotation) < 0:
        raise ValueError(f"{name} rotation block is not a proper rotation: {rotation.tolist()}")
    return matrix


def _distortion_coefficients(D: np.ndarray | list[float] | None, distortion_model: str) -> np.ndarray | None:
    """D padded to the 8 rational_polynomial coefficients, or None when there is no distortion.

    An empty or all-zero D means no distortion whatever the model name (CameraInfo of rectified or
    simulated cameras often leaves distortion_model empty).
    """
    coefficients = np.zeros(0) if D is None else np.asarray(D, dtype=np.float64).ravel()
    if not np.any(coefficients) and np.all(np.isfinite(coefficients)):
        return None
    expected = DISTORTION_COEFFICIENT_COUNTS.get(distortion_model)
    if expected is None:
        raise ValueError(
            f"unsupported distortion_model {distortion_model!r}; supported: {sorted(DISTORTION_COEFFICIENT_COUNTS)}"
        )
    if coefficients.size != expected:
        raise ValueError(f"{distortion_model} takes {expected} coefficients, got {coefficients.size}")
    if not np.all(np.isfinite(coefficients)):
        raise ValueError(f"distortion coefficients must be finite, got {coefficients.tolist()}")
    padded = np.zeros(8)
    padded[:expected] = coefficients
    return padded


def _radial_factor(r2: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    k1, k2, _, _, k3, k4, k5, k6 = coefficients.tolist()  # Python floats keep r2's precision
    numerator = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    denominator = 1.0 + r2 * (k4 + r2 * (k5 + r2 * k6))
    return numerator / denominator


@lru_cache(maxsize=32)
def _monotonic_radius_limit(coefficients: tuple[float, ...]) -> float:
    """Largest normalised radius up to which r * radial(r^2) keeps increasing (the lens model is valid)."""
    radii = np.linspace(0.0, _MAX_NORMALISED_RADIUS, _RADIUS_GRID_STEPS + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        distorted = radii * _radial_factor(radii**2, np.asarray(coefficients))
    increasing = np.diff(distorted) > 0
    increasing &= np.isfinite(distorted[1:])
    if np.all(increasing):
        return _MAX_NORMALISED_RADIUS
    return float(radii[int(np.argmin(increasing))])


def distort_normalised(
    x: np.ndarray, y: np.ndarray, D: np.ndarray | list[float] | None, distortion_model: str = "plumb_bob"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply lens distortion to normalised image coordinates (x/z, y/z).

    Returns (x_distorted, y_distorted, valid): `valid` is False where the point lies beyond the radius at
    which the distortion model stops being monotonic (it would fold back into the image).
    """
    coefficients = _distortion_coefficients(D, distortion_model)
    if coefficients is None:
        return x, y, np.ones(x.shape, dtype=bool)
    _, _, p1, p2, _, _, _, _ = coefficients.tolist()
    r2 = x * x + y * y
    valid = r2 < _monotonic_radius_limit(tuple(coefficients.tolist())) ** 2
    radial = _radial_factor(r2, coefficients)
    xy = x * y
    x_distorted = x * radial + 2.0 * p1 * xy + p2 * (r2 + 2.0 * x * x)
    y_distorted = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * xy
    return x_distorted, y_distorted, valid


def undistort_normalised(
    x_distorted: np.ndarray,
    y_distorted: np.ndarray,
    D: np.ndarray | list[float] | None,
    distortion_model: str = "plumb_bob",
    tolerance: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Invert `distort_normalised`: distorted normalised coordinates -> ideal (x/z, y/z) of the same model.

    OpenCV's fixed-point iteration x = (x_d - tangential(x)) / radial(x), UNDISTORT_ITERATIONS times, then
    checked by distorting again: `valid` is False where that misses (x_d, y_d) by more than `tolerance`
    (normalised units; pass e.g. 1e-3 / focal length for a thousandth of a pixel) or where the point lies
    beyond the model's monotonic radius, so no ray is ever returned that the forward model would not map back.
    """
    coefficients = _distortion_coefficients(D, distortion_model)
    if coefficients is None:
        return x_distorted, y_distorted, np.ones(np.shape(x_distorted), dtype=bool)
    _, _, p1, p2, _, _, _, _ = coefficients.tolist()
    x, y = np.array(x_distorted, dtype=np.float64), np.array(y_distorted, dtype=np.float64)
    with np.errstate(all="ignore"):  # diverging pixels become inf/NaN and fail the check below
        for _ in range(UNDISTORT_ITERATIONS):
            r2 = x * x + y * y
            radial = _radial_factor(r2, coefficients)
            xy = x * y
            x = (x_distorted - 2.0 * p1 * xy - p2 * (r2 + 2.0 * x * x)) / radial
            y = (y_distorted - p1 * (r2 + 2.0 * y * y) - 2.0 * p2 * xy) / radial
        x_again, y_again, valid = distort_normalised(x, y, D, distortion_model)
        miss = np.hypot(x_again - x_distorted, y_again - y_distorted)
    valid &= np.isfinite(miss) & (miss <= tolerance)
    return x, y, valid


def project_points(
    points_xyz: np.ndarray,
    T_cam_lidar: np.ndarray | list[float],
    K: np.ndarray | list[float],
    image_size: tuple[int, int],
    D: np.ndarray | list[float] | None = None,
    distortion_model: str = "plumb_bob",
    min_range: float = 0.1,
    max_range: float = np.inf,
) -> ProjectedPoints:
    """Project every usable LiDAR point into the image (no z-buffer; see `keep_nearest_per_pixel`).

    points_xyz:   (N, 3) metres in the LiDAR frame (any float dtype; rows with NaN/inf are dropped).
    T_cam_lidar:  4x4 (or 16 row-major values) mapping LiDAR-frame points into the camera optical frame.
    K:            3x3 intrinsics (or `CameraInfo.k`'s 9 values) of the image the depth is for.
    image_size:   (width, height) in pixels.
    D, distortion_model: lens distortion of that image (None for rectified images).
    min_range, max_range: metres; points whose Euclidean distance from the LiDAR origin is outside
                  [min_range, max_range] are dropped (the default min_range removes the all-zero points some
                  drivers emit for "no return").
    Dropped too: points behind (or on) the camera plane and points outside the image.
    """
    width, height = _image_size(image_size)
    points = np.asarray(points_xyz)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points_xyz must be (N, 3), got shape {points.shape}")
    if min_range < 0 or not min_range <= max_range:
        raise ValueError(f"need 0 <= min_range <= max_range, got [{min_range}, {max_range}]")
    transform = rigid_transform(T_cam_lidar)
    intrinsics = camera_matrix(K)

    # Work in the cloud's own float precision (float32 halves the memory traffic of a 120k-point scan).
    # Only the z row of the transform touches every point; range, x and y only the points in front.
    dtype = points.dtype if points.dtype in (np.float32, np.float64) else np.float64
    points = points.astype(dtype, copy=False)
    rotation, translation = transform[:3, :3].astype(dtype), transform[:3, 3].astype(dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        z = points @ rotation[2] + translation[2]
        index = np.flatnonzero(z > _MIN_CAMERA_Z)  # NaN compares False
        in_front = np.take(points, index, axis=0)  # ~5x faster than points[index] for (N, 3) rows
        # NaN/inf coordinates give a non-finite squared range (so does overflow, equally unusable)
        range_sq = np.einsum("ij,ij->i", in_front, in_front)
        usable = np.isfinite(range_sq) & (range_sq >= min_range * min_range) & (range_sq <= max_range * max_range)
    index = index[usable]
    in_front, z = np.compress(usable, in_front, axis=0), z[index]
    x = in_front @ rotation[0] + translation[0]
    y = in_front @ rotation[1] + translation[1]

    x_distorted, y_distorted, lens_valid = distort_normalised(x / z, y / z, D, distortion_model)
    fx, skew, cx, fy, cy = (float(intrinsics[i, j]) for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2)))
    u = fx * x_distorted + skew * y_distorted + cx  # Python floats keep the cloud's precision
    v = fy * y_distorted + cy
    col = np.floor(u + 0.5)
    row = np.floor(v + 0.5)
    inside = lens_valid & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    return ProjectedPoints(
        u=u[inside],
        v=v[inside],
        col=col[inside].astype(np.int64),
        row=row[inside].astype(np.int64),
        depth=z[inside].astype(np.float32),
        index=index[inside],
    )


def keep_nearest_per_pixel(projected: ProjectedPoints, image_size: tuple[int, int]) -> ProjectedPoints:
    """Z-buffer: of the points landing in the same pixel keep only the nearest (smallest depth)."""
    width, _ = _image_size(image_size)
    pixel = projected.row * width + projected.col
    # One sort by (pixel, depth) packed in a uint64: the bits of a positive float32 order like its value,
    # so pixel << 32 | depth bits sorts by pixel, nearest first within a pixel (8x faster than lexsort).
    depth_bits = np.ascontiguousarray(projected.depth, dtype=np.float32).view(np.uint32).astype(np.uint64)
    order = np.argsort((pixel.astype(np.uint64) << np.uint64(32)) | depth_bits)
    sorted_pixel = pixel[order]
    first_in_pixel = np.ones(sorted_pixel.shape, dtype=bool)
    first_in_pixel[1:] = sorted_pixel[1:] != sorted_pixel[:-1]
    return projected.select(order[first_in_pixel])


def rasterize_depth(projected: ProjectedPoints, image_size: tuple[int, int]) -> np.ndarray:
    """(height, width) float32 depth image in metres, NaN where no point landed; nearest point wins."""
    width, height = _image_size(image_size)
    nearest = keep_nearest_per_pixel(projected, image_size)
    depth = np.full((height, width), np.nan, dtype=np.float32)
    depth[nearest.row, nearest.col] = nearest.depth
    return depth


def project_lidar(
    points_xyz: np.ndarray,
    T_cam_lidar: np.ndarray | list[float],
    K: np.ndarray | list[float],
    image_size: tuple[int, int],
    D: np.ndarray | list[float] | None = None,
    distortion_model: str = "plumb_bob",
    min_range: float = 0.1,
    max_range: float = np.inf,
) -> np.ndarray:
    """Sparse depth image (height, width) float32 metres (z along the optical axis), NaN = no LiDAR point.

    Arguments as in `project_points` (note `image_size` is (width, height)). Where several points land in
    one pixel the nearest is kept, so background points seen through foreground gaps do not win.

    Example:
        >>> depth = project_lidar(cloud_xyz, T_cam_lidar, camera_info.k, (camera_info.width, camera_info.height),
        ...                       D=camera_info.d, distortion_model=camera_info.distortion_model)
    """
    projected = project_points(points_xyz, T_cam_lidar, K, image_size, D, distortion_model, min_range, max_range)
    return rasterize_depth(projected, image_size)


def _image_size(image_size: tuple[int, int]) -> tuple[int, int]:
    width, height = (int(value) for value in image_size)
    if width <= 0 or height <= 0:
        raise ValueError(f"image_size must be positive (width, height), got {image_size}")
    return width, height
