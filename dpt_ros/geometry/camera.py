"""Pinhole intrinsics from CameraInfo arrays: validation and rescaling to another image size.

Works on the plain arrays of sensor_msgs/CameraInfo (K: 9 row-major values of the 3x3 camera
matrix, P: 12 row-major values of the 3x4 projection matrix), so it needs no ROS.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dpt_ros.errors import CAMERA_INFO_MISMATCH, INVALID_CAMERA_INFO, UNSUPPORTED_DISTORTION, InputError
from dpt_ros.geometry.lidar_projection import DISTORTION_COEFFICIENT_COUNTS

IntrinsicsSource = Literal["K", "P"]


@dataclass(frozen=True)
class PinholeIntrinsics:
    """Focal lengths and principal point in pixels for an image of width x height pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int


def intrinsics_from_matrices(
    k: np.ndarray, p: np.ndarray, width: int, height: int, source: IntrinsicsSource = "K"
) -> PinholeIntrinsics:
    """Pinhole intrinsics from CameraInfo K (9 values) or P (12 values), whichever `source` names.

    Use "P" for rectified images (its focal lengths are those of the rectified camera), "K" for raw
    ones. Raises InputError when the chosen matrix is unusable (all zeros: an uncalibrated camera),
    the focal lengths are not positive and finite, or the size is zero.
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
    return PinholeIntrinsics(float(fx), float(fy), float(cx), float(cy), int(width), int(height))


@dataclass(frozen=True)
class LensDistortion:
    """A raw (unrectified) image's lens distortion: CameraInfo D in OpenCV order and its distortion_model."""

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

    Focal lengths and P's Tx/Ty scale with the image; the principal point moves with pixel centres
    ((c + 0.5) * s - 0.5), matching how cv2.resize maps pixels, so a re-projected point lands on the
    same scene point at both sizes. Returns new float64 arrays.
    """
    scale_x = to_size[0] / from_size[0]
    scale_y = to_size[1] / from_size[1]
    new_k = np.asarray(k, dtype=np.float64).reshape(3, 3).copy()
    new_p = np.asarray(p, dtype=np.float64).reshape(3, 4).copy()
    for matrix in (new_k, new_p):
        matrix[0, 0] *= scale_x
        matrix[1, 1] *= scale_y
        matrix[0, 2] = (matrix[0, 2] + 0.5) * scale_x - 0.5
        matrix[1, 2] = (matrix[1, 2] + 0.5) * scale_y - 0.5
    new_p[0, 3] *= scale_x  # Tx = -fx' * baseline
    new_p[1, 3] *= scale_y
    return new_k.reshape(9), new_p.reshape(12)


def scale_intrinsics(intrinsics: PinholeIntrinsics, width: int, height: int) -> PinholeIntrinsics:
    """The same camera seen in a width x height resize of its image (see scale_camera_matrices)."""
    k = np.array([intrinsics.fx, 0, intrinsics.cx, 0, intrinsics.fy, intrinsics.cy, 0, 0, 1])
    scaled_k, _ = scale_camera_matrices(k, np.zeros(12), (intrinsics.width, intrinsics.height), (width, height))
    return PinholeIntrinsics(
        float(scaled_k[0]), float(scaled_k[4]), float(scaled_k[2]), float(scaled_k[5]), width, height
    )
