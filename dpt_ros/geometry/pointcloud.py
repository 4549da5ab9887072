"""Depth image -> packed point cloud buffer (the payload and layout of a sensor_msgs/PointCloud2).

Back-projection is depth_image_proc's pinhole formula in the camera optical frame (x right, y down,
z forward): x = (u - cx) * z / fx, y = (v - cy) * z / fy, with (u, v) the pixel column and row.
For a raw image of a distorted lens, (x/z, y/z) is instead the pixel's undistorted ray through the same
lens model the LiDAR projection uses (camera.undistort_normalised), computed once per camera model and
kept (`ray_grid`); pixels whose ray the model cannot give are NaN points.
The cloud is organized: one point per (strided) pixel, height = rows, width = columns, and NaN
x, y, z where the depth is unknown, so is_dense is always False.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import cv2
import numpy as np

from dpt_ros.geometry.camera import LensDistortion, PinholeIntrinsics, undistort_normalised
from dpt_ros.geometry.cloud_fields import POINT_FIELD_DTYPES

# numpy dtype -> sensor_msgs/PointField datatype code (the inverse of the reader's table).
POINT_FIELD_DATATYPES: Final[dict[np.dtype, int]] = {np.dtype(t): code for code, t in POINT_FIELD_DTYPES.items()}

# Ray grids kept (two float32 values per sampled pixel each: 2.4 MB at 640x480, 265 MB at 8K): one per
# camera model in use, so a node with up to this many distorted cameras computes each grid once.
RAY_GRIDS_KEPT: Final[int] = 8
# Largest miss, in pixels, of a ray re-distorted back onto its pixel; beyond it the ray is NaN.
UNDISTORT_TOLERANCE_PX: Final[float] = 1e-3


@dataclass(frozen=True)
class CloudField:
    """One PointField: `offset` bytes into each point, `datatype` a PointField code, `count` elements."""

    name: str
    offset: int
    datatype: int
    count: int = 1


@dataclass(frozen=True)
class PackedCloud:
    """The parts of a PointCloud2 besides its header; `data` is (height * row_step,) uint8, little-endian."""

    data: np.ndarray
    height: int
    width: int
    point_step: int
    row_step: int
    fields: tuple[CloudField, ...]
    is_dense: bool = False


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float32 whose bits are 0x00RRGGBB (the PCL/ROS "rgb" field)."""
    # Little-endian bytes of 0x00RRGGBB are B, G, R, 0: one OpenCV channel shuffle (5x faster than shifts).
    packed = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGRA)
    packed[..., 3] = 0
    return packed.view("<f4")[..., 0]


def back_project(
    depth_m: np.ndarray,
    intrinsics: PinholeIntrinsics,
    stride: int = 1,
    max_range: float = np.inf,
    out: np.ndarray | None = None,
    distortion: LensDistortion | None = None,
) -> np.ndarray:
    """(H, W) depth in metres -> (ceil(H/stride), ceil(W/stride), 3) float32 x, y, z in metres.

    The one back-projection: the node's point cloud (`build_point_cloud`), the benchmark and the tests
    all go through it. Samples every `stride`-th row and column starting at pixel (0, 0). Points whose depth
    is not finite, not positive, or deeper than `max_range` metres (along z, like the depth image) are NaN,
    and so are those whose undistorted ray cannot be found when `distortion` (a raw image's lens) is given.
    out: an optional float32 array of that shape to write into (e.g. the x, y, z fields of a packed cloud,
    which saves a copy); returned.
    """
    shape = _sampled_shape(depth_m, intrinsics, stride)
    z = np.asarray(depth_m[::stride, ::stride], dtype=np.float32)
    with np.errstate(invalid="ignore"):
        valid = (z > 0) & (z <= np.float32(max_range))  # False for NaN
    valid &= np.isfinite(z)
    z = np.where(valid, z, np.float32(np.nan))  # NaN depth makes x and y NaN too
    if out is None:
        out = np.empty(shape + (3,), dtype=np.float32)
    elif out.shape != shape + (3,) or out.dtype != np.float32:
        raise ValueError(f"out must be float32 {shape + (3,)}, got {out.dtype} {out.shape}")
    x_per_z, y_per_z = ray_grid(intrinsics, distortion, stride)
    # written per coordinate into `out`: no temporaries of size h x w x 3
    np.multiply(z, x_per_z, out=out[..., 0])
    np.multiply(z, y_per_z, out=out[..., 1])
    out[..., 2] = z
    if distortion is not None:  # pixels without a ray are unknown points
        out[..., 2][np.isnan(x_per_z)] = np.nan
    return out


@lru_cache(maxsize=RAY_GRIDS_KEPT)
def ray_grid(
    intrinsics: PinholeIntrinsics, distortion: LensDistortion | None, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """(x/z, y/z) of every stride-th pixel's ray, read-only float32, broadcastable to (rows, columns).

    Pinhole (no distortion): shapes (1, columns) and (rows, 1), `PinholeIntrinsics.ray_slopes`. Distorted:
    (rows, columns) each, NaN where the lens model cannot be inverted to UNDISTORT_TOLERANCE_PX. Cached per
    (intrinsics, distortion, stride): every frame of a camera shares one grid.
    """
    # float64 slopes rounded once to float32: the grid is computed once per camera, so precision is free
    x_slopes, y_slopes = intrinsics.ray_slopes(stride, np.float64)
    if distortion is None:
        rays = (x_slopes[np.newaxis, :].astype(np.float32), y_slopes[:, np.newaxis].astype(np.float32))
    else:
        x_grid, y_grid = np.broadcast_arrays(x_slopes[np.newaxis, :], y_slopes[:, np.newaxis])
        tolerance = UNDISTORT_TOLERANCE_PX / max(intrinsics.fx, intrinsics.fy)
        x, y, valid = undistort_normalised(x_grid, y_grid, distortion.coefficients, distortion.model, tolerance)
        rays = (np.where(valid, x, np.nan).astype(np.float32), np.where(valid, y, np.nan).astype(np.float32))
    for array in rays:
        array.flags.writeable = False  # shared by every frame of this camera
    return rays


def _sampled_shape(depth_m: np.ndarray, intrinsics: PinholeIntrinsics, stride: int) -> tuple[int, int]:
    """(rows, columns) kept by `stride`; ValueError unless the depth matches the intrinsics and stride >= 1."""
    height, width = depth_m.shape
    if (width, height) != (intrinsics.width, intrinsics.height):
        raise ValueError(f"depth is {width}x{height} but the intrinsics are for {intrinsics.width}x{intrinsics.height}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    return -(-height // stride), -(-width // stride)


def build_point_cloud(
    depth_m: np.ndarray,
    intrinsics: PinholeIntrinsics,
    *,
    stride: int = 1,
    max_range: float = np.inf,
    rgb: np.ndarray | None = None,
    channels: Mapping[str, np.ndarray] | None = None,
    distortion: LensDistortion | None = None,
) -> PackedCloud:
    """Organized point cloud of a metric depth image, packed for a PointCloud2.

    depth_m: (H, W) float32 metres along the optical axis, NaN where unknown.
    rgb: optional (H, W, 3) uint8 image at the same size -> an "rgb" float32 field.
    channels: optional extra per-pixel fields, name -> (H, W) array of a PointField type
        (e.g. "label": uint16 class ids); they are strided like the depth.
    distortion: the lens distortion of a raw image (None for rectified or undistorted ones): points go
        along the undistorted rays of the same lens model (see `ray_grid`).
    Fields are x, y, z (float32), then rgb, then channels in order, packed without padding.
    """
    rows, columns = _sampled_shape(depth_m, intrinsics, stride)
    extra: dict[str, np.ndarray] = {}
    if rgb is not None:
        extra["rgb"] = pack_rgb(rgb[::stride, ::stride])
    for name, values in (channels or {}).items():
        if values.shape != depth_m.shape:
            raise ValueError(f"channel {name!r} is {values.shape}, depth is {depth_m.shape}")
        if values.dtype not in POINT_FIELD_DATATYPES:
            raise ValueError(f"channel {name!r} has dtype {values.dtype}, not a PointField type")
        extra[name] = values[::stride, ::stride]
    point_dtype = np.dtype(
        [("x", "<f4"), ("y", "<f4"), ("z", "<f4")] + [(name, v.dtype.newbyteorder("<")) for name, v in extra.items()]
    )
    points = np.empty((rows, columns), dtype=point_dtype)
    # x, y, z are the first three float32 fields: back-project straight into them as one (rows, columns, 3) view
    back_project(depth_m, intrinsics, stride, max_range, out=points.getfield(np.dtype(("<f4", (3,))), 0),
                 distortion=distortion)
    for name, values in extra.items():
        points[name] = values
    fields = tuple(
        CloudField(name, point_dtype.fields[name][1], POINT_FIELD_DATATYPES[point_dtype[name].newbyteorder("=")])
        for name in point_dtype.names
    )
    return PackedCloud(
        data=points.reshape(-1).view(np.uint8),
        height=rows,
        width=columns,
        point_step=point_dtype.itemsize,
        row_step=point_dtype.itemsize * columns,
        fields=fields,
    )
