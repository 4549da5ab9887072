"""Project LiDAR points into a camera image: sparse metric depth with a z-buffer.

Conventions (the same as ROS `sensor_msgs/CameraInfo` and OpenCV):
- The camera frame is the *optical* frame: x right, y down, z forward. Depth is z (along the optical
  axis), not the Euclidean range.
- Pixel coordinates (u, v) have integer values at pixel *centres*; pixel (col, row) covers
  u in [col - 0.5, col + 0.5). The image has `width` columns and `height` rows.
- `image_size` is always `(width, height)` like `CameraInfo.width/height` and OpenCV's `cv2.Size`,
  NOT numpy's `(rows, cols)`; returned images have numpy shape `(height, width)`.
- The lens (K, distortion) is `dpt_ros.geometry.camera.PinholeIntrinsics`; `D=None` (or an empty/zero D)
  means a rectified image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpt_ros.geometry.camera import PinholeIntrinsics
from dpt_ros.geometry.transforms import rigid_transform

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
    min_range, max_range: as in `project_into_camera`.
    """
    camera = PinholeIntrinsics.from_matrix(K, image_size, D, distortion_model)
    return project_into_camera(points_xyz, T_cam_lidar, camera, min_range, max_range)


def project_into_camera(
    points_xyz: np.ndarray,
    T_cam_lidar: np.ndarray | list[float],
    camera: PinholeIntrinsics,
    min_range: float = 0.1,
    max_range: float = np.inf,
) -> ProjectedPoints:
    """Project every usable LiDAR point into `camera`'s image, through its lens (no z-buffer).

    points_xyz:   (N, 3) metres in the LiDAR frame (any float dtype; rows with NaN/inf are dropped).
    T_cam_lidar:  4x4 (or 16 row-major values) mapping LiDAR-frame points into the camera optical frame.
    min_range, max_range: metres; points whose Euclidean distance from the LiDAR origin is outside
                  [min_range, max_range] are dropped (the default min_range removes the all-zero points some
                  drivers emit for "no return").
    Dropped too: points behind (or on) the camera plane and points outside the image. Raises ValueError
    for bad arguments, including a lens model that cannot be evaluated.
    """
    width, height = _image_size(camera.image_size)
    points = np.asarray(points_xyz)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points_xyz must be (N, 3), got shape {points.shape}")
    if min_range < 0 or not min_range <= max_range:
        raise ValueError(f"need 0 <= min_range <= max_range, got [{min_range}, {max_range}]")
    transform = rigid_transform(T_cam_lidar)

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

    u, v, lens_valid = camera.pixel_coordinates(x / z, y / z)
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
