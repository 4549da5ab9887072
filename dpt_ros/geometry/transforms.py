"""Rigid transforms: 4x4 homogeneous matrices, built from rotations, quaternions or parameters, validated,
inverted, and turned back into quaternions.

``T_a_b`` (4x4 float64) maps coordinates in frame ``b`` into frame ``a``: it is the pose of ``b`` expressed in
``a``, the same thing `tf2 lookup_transform(target=a, source=b)` returns. Frames follow ROS conventions
(REP 103 / REP 105): vehicle and LiDAR x forward, y left, z up; the camera *optical* frame x right, y down,
z forward. The LiDAR -> camera extrinsic `T_cam_lidar` maps LiDAR points into the optical frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# optical axes expressed in the vehicle frame: x_C = -y_B, y_C = -z_B, z_C = x_B
R_BASE_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
# the rotation taking LiDAR / vehicle axes (x forward, y left, z up; REP 103) to camera optical axes
OPTICAL_FROM_LIDAR_ROTATION = R_BASE_OPTICAL.T


def rotation_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """3x3 rotation R = Rz(yaw) @ Ry(pitch) @ Rx(roll), angles in radians."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    return rz @ ry @ rx


def make_transform(rotation: np.ndarray, translation: np.ndarray | Sequence[float]) -> np.ndarray:
    """4x4 homogeneous transform from a 3x3 rotation and a translation (metres)."""
    transform = np.eye(4)
    transform[:3, :3] = rotation
    transform[:3, 3] = translation
    return transform


def invert_transform(transform: np.ndarray) -> np.ndarray:
    """Inverse of a 4x4 rigid transform (uses R^T, exact for rotations)."""
    rotation, translation = transform[:3, :3], transform[:3, 3]
    return make_transform(rotation.T, -rotation.T @ translation)


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
    rotation = np.array((
        (1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)),
        (2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)),
        (2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)),
    ))
    return make_transform(rotation, translation)


def rotation_to_quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) unit quaternion of a 3x3 rotation matrix (Shepperd's method, numerically stable)."""
    m = np.asarray(rotation, dtype=float)
    trace = np.trace(m)
    if trace > 0.0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s)
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q_vec = np.zeros(3)
        q_vec[i] = 0.25 * s
        q_vec[j] = (m[j, i] + m[i, j]) / s
        q_vec[k] = (m[k, i] + m[i, k]) / s
        q = (*q_vec, (m[k, j] - m[j, k]) / s)
    q_array = np.asarray(q) / np.linalg.norm(q)
    return tuple(float(value) for value in q_array)  # type: ignore[return-value]


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
