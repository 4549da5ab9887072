"""The camera model: pinhole intrinsics, lens distortion, CameraInfo parsing and rescaling to another size.

One class, `PinholeIntrinsics`, serves every user: the node's point cloud (back-projection), LiDAR
projection (with distortion), the scene simulator's pixel rays and the published, rescaled camera_info.
It works on the plain arrays of sensor_msgs/CameraInfo (K: 9 row-major values of the 3x3 camera matrix,
D: distortion coefficients, P: 12 row-major values of the 3x4 projection matrix), so it needs no ROS.

Conventions (the same as ROS `sensor_msgs/CameraInfo` and OpenCV):
- The camera frame is the *optical* frame: x right, y down, z forward; depth is z, not the Euclidean range.
- Pixel coordinates (u, v) have integer values at pixel *centres*; u is the column, v the row.
- `image_size` is `(width, height)` like `CameraInfo.width/height` and OpenCV's `cv2.Size`.
- Distortion coefficients follow OpenCV's order: plumb_bob = (k1, k2, p1, p2, k3);
  rational_polynomial = (k1, k2, p1, p2, k3, k4, k5, k6). None (or all zeros) means a rectified image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from dpt_ros.errors import CAMERA_INFO_MISMATCH, INVALID_CAMERA_INFO, UNSUPPORTED_DISTORTION, InputError

IntrinsicsSource = Literal["K", "P"]

# Number of coefficients each supported `CameraInfo.distortion_model` takes.
DISTORTION_COEFFICIENT_COUNTS = {"plumb_bob": 5, "rational_polynomial": 8}

# Distortion models are only evaluated up to this normalised radius r = tan(angle off axis); 10 is 84 degrees,
# beyond any pinhole-type lens. Past the first radius where the radial mapping stops increasing, a polynomial
# model folds far off-axis points back into the image as ghosts, so those points are dropped.
_MAX_NORMALISED_RADIUS = 10.0
_RADIUS_GRID_STEPS = 4000
# Fixed-point steps of undistort_normalised: OpenCV's undistortPoints default is 5; the inversion is
# verified afterwards, and 20 reach 1e-9 for the plumb_bob / rational lenses of real cameras.
UNDISTORT_ITERATIONS = 20


@dataclass(frozen=True)
class PinholeIntrinsics:
    """A camera for an image of width x height pixels: focal lengths and principal point in pixels, the
    skew K[0, 1], and its lens distortion (`distortion`: coefficients of `distortion_model` in OpenCV order,
    None for rectified images). The distortion model is checked where points are projected, so a camera
    with an unsupported lens is reported per frame rather than refused when its camera_info arrives.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    distortion: tuple[float, ...] | None = None
    distortion_model: str = "plumb_bob"
    skew: float = 0.0

    @classmethod
    def from_matrix(
        cls,
        K: np.ndarray | list[float],
        image_size: tuple[int, int],
        D: np.ndarray | list[float] | None = None,
        distortion_model: str = "plumb_bob",
    ) -> PinholeIntrinsics:
        """The camera of a 3x3 K (or its 9 row-major values) at image_size (width, height) with distortion D.

        Raises ValueError unless K has 9 finite values with positive focal lengths and the size is positive.
        """
        matrix = np.asarray(K, dtype=np.float64)
        if matrix.size != 9:
            raise ValueError(f"K must have 9 values (3x3), got shape {matrix.shape}")
        matrix = matrix.reshape(3, 3)
        if not np.all(np.isfinite(matrix)) or matrix[0, 0] <= 0 or matrix[1, 1] <= 0:
            raise ValueError(f"K must be finite with positive focal lengths, got {matrix.tolist()}")
        width, height = (int(value) for value in image_size)
        if width <= 0 or height <= 0:
            raise ValueError(f"image_size must be positive (width, height), got {image_size}")
        distortion = None if D is None else tuple(float(value) for value in np.asarray(D, dtype=np.float64).ravel())
        return cls(
            float(matrix[0, 0]), float(matrix[1, 1]), float(matrix[0, 2]), float(matrix[1, 2]), width, height,
            distortion, distortion_model, float(matrix[0, 1]),
        )  # fmt: skip

    @property
    def K(self) -> np.ndarray:
        """3x3 float64 camera matrix."""
        return np.array([[self.fx, self.skew, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def D(self) -> np.ndarray | None:
        """Distortion coefficients as a float64 array, None for a rectified image."""
        return None if self.distortion is None else np.asarray(self.distortion, dtype=np.float64)

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

    def ray_slopes(self, stride: int = 1, dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
        """Back-projection factors of every `stride`-th column and row from pixel (0, 0), ignoring distortion:
        x/z = (u - cx) / fx, shape (ceil(width/stride),), and y/z = (v - cy) / fy, shape (ceil(height/stride),),
        in `dtype` (the point cloud computes in float32, the simulator in float64). Skew is ignored, as
        depth_image_proc does."""
        u = np.arange(0, self.width, stride, dtype=dtype)
        v = np.arange(0, self.height, stride, dtype=dtype)
        return (u - dtype(self.cx)) / dtype(self.fx), (v - dtype(self.cy)) / dtype(self.fy)

    def pixel_rays(self) -> np.ndarray:
        """(height * width, 3) float64 optical-frame directions through pixel centres with unit z, row-major
        over (v, u): a ray parameter along them is the depth. Ideal pinhole (no distortion)."""
        x_per_z, y_per_z = self.ray_slopes(1, np.float64)
        rays = np.ones((self.height, self.width, 3))
        rays[..., 0] = x_per_z[np.newaxis, :]
        rays[..., 1] = y_per_z[:, np.newaxis]
        return rays.reshape(-1, 3)

    def pixel_coordinates(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixel (u, v) of normalised coordinates (x/z, y/z) through the lens, and where that is valid.

        Returns (u, v, valid) in the inputs' float precision; `valid` is False where the point lies beyond
        the radius at which the distortion model stops being monotonic (it would fold back into the image).
        Raises ValueError for an unsupported distortion model or a wrong number of coefficients.
        """
        x_distorted, y_distorted, valid = distort_normalised(x, y, self.distortion, self.distortion_model)
        # Python floats keep the points' precision
        u = self.fx * x_distorted + self.skew * y_distorted + self.cx
        v = self.fy * y_distorted + self.cy
        return u, v, valid


def intrinsics_from_matrices(
    k: np.ndarray,
    p: np.ndarray,
    width: int,
    height: int,
    source: IntrinsicsSource = "K",
    d: np.ndarray | None = None,
    distortion_model: str = "plumb_bob",
) -> PinholeIntrinsics:
    """The camera from CameraInfo K (9 values) or P (12 values), whichever `source` names.

    Use "P" for rectified images (its focal lengths are those of the rectified camera; no distortion), "K"
    for raw ones, whose distortion `d` (CameraInfo D; empty or None: none) is kept. Raises InputError when the
    chosen matrix is unusable (all zeros: an uncalibrated camera), the focal lengths are not positive and
    finite, or the size is zero.
    """
    matrix = np.asarray(p if source == "P" else k, dtype=np.float64).reshape(3, -1)
    fx, fy, cx, cy = matrix[0, 0], matrix[1, 1], matrix[0, 2], matrix[1, 2]
    if width <= 0 or height <= 0:
        raise InputError(INVALID_CAMERA_INFO, f"camera_info is {width}x{height} pixels")
    if not np.all(np.isfinite(matrix)) or not (fx > 0 and fy > 0):
        raise InputError(
            INVALID_CAMERA_INFO,
            f"camera_info {source} has fx={fx:g}, fy={fy:g} (all zeros means the camera is not calibrated); "
            "point clouds need positive focal lengths",
        )
    distortion = None
    if source != "P" and d is not None and len(d):
        distortion = tuple(float(value) for value in np.asarray(d, dtype=np.float64).ravel())
    return PinholeIntrinsics(
        float(fx), float(fy), float(cx), float(cy), int(width), int(height), distortion, distortion_model,
        float(matrix[0, 1]),
    )


def message_field(message: Any, *names: str) -> Any:
    """First attribute present: ROS 2 CameraInfo says k/d/p, ROS 1 (read from ROS 1 bags) says K/D/P."""
    for name in names:
        if hasattr(message, name):
            return getattr(message, name)
    raise AttributeError(names[0])


def lens_from_camera_info(info: Any, intrinsics_source: IntrinsicsSource) -> PinholeIntrinsics:
    """The lens a prediction is for, from a CameraInfo message (rclpy's or a bag's): raw images
    (intrinsics_source "K") use K and D, rectified ones ("P") use P and no distortion. Raises InputError."""
    return intrinsics_from_matrices(
        message_field(info, "k", "K"), message_field(info, "p", "P"), info.width, info.height,
        intrinsics_source, message_field(info, "d", "D"), info.distortion_model,
    )  # fmt: skip


@dataclass(frozen=True)
class LensDistortion:
    """A raw (unrectified) image's lens distortion to undo when back-projecting: CameraInfo D in OpenCV
    order and its distortion_model, validated by `lens_distortion` (hashable: ray grids are cached by it)."""

    coefficients: tuple[float, ...]
    model: str


def lens_distortion(d: Sequence[float], distortion_model: str, source: IntrinsicsSource) -> LensDistortion | None:
    """The distortion to undo when back-projecting, or None when there is none to undo.

    None for rectified images (source "P": their pixels follow P's pinhole model) and for an empty or
    all-zero D. Raises InputError: UNSUPPORTED_DISTORTION for a model other than plumb_bob and
    rational_polynomial (e.g. equidistant fisheye), INVALID_CAMERA_INFO for a D of the wrong length or
    with non-finite values.
    """
    coefficients = tuple(float(value) for value in d)
    if source == "P" or (not any(coefficients) and all(np.isfinite(coefficients))):
        return None
    expected = DISTORTION_COEFFICIENT_COUNTS.get(distortion_model)
    if expected is None:
        raise InputError(
            UNSUPPORTED_DISTORTION,
            f"distortion_model {distortion_model!r} with non-zero D cannot be undone (supported: "
            f"{sorted(DISTORTION_COEFFICIENT_COUNTS)}); publish rectified images (image_rect) with intrinsics_source P",
        )
    if len(coefficients) != expected or not all(np.isfinite(coefficients)):
        raise InputError(
            INVALID_CAMERA_INFO, f"{distortion_model} takes {expected} finite coefficients, got D={list(coefficients)}"
        )
    return LensDistortion(coefficients, distortion_model)


def require_resolution(intrinsics: PinholeIntrinsics, width: int, height: int) -> None:
    """Raise InputError unless the camera model was calibrated for a width x height image."""
    if (intrinsics.width, intrinsics.height) != (width, height):
        raise InputError(
            CAMERA_INFO_MISMATCH,
            f"camera_info is for {intrinsics.width}x{intrinsics.height} but the image is {width}x{height}; "
            "publish the camera_info that belongs to this image stream",
        )


def scale_camera_matrices(
    k: np.ndarray, p: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Rescale K (9) and P (12) from an image of from_size=(width, height) to to_size=(width, height).

    Focal lengths, skew and P's Tx/Ty scale with the image; the principal point moves with pixel centres
    ((c + 0.5) * s - 0.5), matching how cv2.resize maps pixels, so a re-projected point lands on the
    same scene point at both sizes. Returns new float64 arrays.
    """
    scale_x = to_size[0] / from_size[0]
    scale_y = to_size[1] / from_size[1]
    new_k = np.asarray(k, dtype=np.float64).reshape(3, 3).copy()
    new_p = np.asarray(p, dtype=np.float64).reshape(3, 4).copy()
    for matrix in (new_k, new_p):
        matrix[0, :2] *= scale_x  # fx and skew
        matrix[1, 1] *= scale_y
        matrix[0, 2] = (matrix[0, 2] + 0.5) * scale_x - 0.5
        matrix[1, 2] = (matrix[1, 2] + 0.5) * scale_y - 0.5
    new_p[0, 3] *= scale_x  # Tx = -fx' * baseline
    new_p[1, 3] *= scale_y
    return new_k.reshape(9), new_p.reshape(12)


def scale_intrinsics(intrinsics: PinholeIntrinsics, width: int, height: int) -> PinholeIntrinsics:
    """The same camera seen in a width x height resize of its image (see scale_camera_matrices); the
    distortion coefficients act on normalised coordinates and stay as they are."""
    scaled_k, _ = scale_camera_matrices(intrinsics.K, np.zeros(12), intrinsics.image_size, (width, height))
    return replace(
        intrinsics, fx=float(scaled_k[0]), fy=float(scaled_k[4]), cx=float(scaled_k[2]), cy=float(scaled_k[5]),
        width=int(width), height=int(height), skew=float(scaled_k[1]),
    )  # fmt: skip


def _distortion_coefficients(D: np.ndarray | tuple | list[float] | None, distortion_model: str) -> np.ndarray | None:
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
    x: np.ndarray,
    y: np.ndarray,
    D: np.ndarray | tuple | list[float] | None,
    distortion_model: str = "plumb_bob",
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
    D: np.ndarray | tuple | list[float] | None,
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
