"""LiDAR -> camera extrinsics from parameters: xyz + quaternion or a 4x4 row-major matrix.

The transform maps points from the LiDAR frame into the camera *optical* frame (x right, y down,
z forward), i.e. it is the pose of the LiDAR expressed in the optical frame, the same thing
`tf2 lookup_transform(target=camera_optical_frame, source=lidar_frame)` returns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dpt_ros.geometry.lidar_projection import rigid_transform


def transform_from_xyz_quaternion(xyz: Sequence[float], quaternion_xyzw: Sequence[float]) -> np.ndarray:
    """4x4 float64 transform from a translation (metres) and a unit quaternion (x, y, z, w), ROS order.

    The quaternion is normalised (parameters often carry rounded values); a zero or non-finite one raises.
    """
    translation = np.asarray(xyz, dtype=np.float64)
    quaternion = np.asarray(quaternion_xyzw, dtype=np.float64)
    if translation.shape != (3,) or quaternion.shape != (4,):
        raise ValueError(f"need xyz (3) and quaternion x, y, z, w (4), got {translation.shape}, {quaternion.shape}")
    norm = np.linalg.norm(quaternion)
    if not np.all(np.isfinite(translation)) or not np.isfinite(norm) or norm < 1e-9:
        raise ValueError(f"invalid extrinsic: xyz {translation.tolist()}, quaternion {quaternion.tolist()}")
    x, y, z, w = quaternion / norm
    transform = np.eye(4)
    transform[:3, :3] = (
        (1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)),
        (2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)),
        (2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)),
    )
    transform[:3, 3] = translation
    return transform


def transform_from_parameter(values: Sequence[float]) -> np.ndarray:
    """T_cam_lidar from a parameter list: 7 values (x, y, z, qx, qy, qz, qw) or 16 (4x4 row-major).

    Raises ValueError for any other length or a matrix that is not a rigid transform.
    """
    values = [float(value) for value in values]
    if len(values) == 7:
        return transform_from_xyz_quaternion(values[:3], values[3:])
    if len(values) == 16:
        return rigid_transform(values, name="lidar_to_camera")
    raise ValueError(
        f"lidar_to_camera needs 7 values (x y z qx qy qz qw) or 16 (4x4 row-major), got {len(values)}"
    )
