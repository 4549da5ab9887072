"""Sparse ground truth from raw KITTI Velodyne scans and calibration files.

KITTI raw ships, per date folder, `calib_cam_to_cam.txt` (P_rect_0N 3x4, R_rect_00 3x3, ...) and
`calib_velo_to_cam.txt` (R 3x3, T 3), and per frame `velodyne_points/data/<frame>.bin` (float32 x, y, z,
reflectance). A Velodyne point x maps to rectified camera N pixels by P_rect_0N @ R_rect_00 @ (R x + T).
We split P_rect_0N = K [I | t] and hand (K, T_cam_velo) to the node's own projection
(`dpt_ros.geometry.lidar_projection.project_lidar`: pixel-centre rounding, nearest point per pixel), so the
training targets are built exactly like the LiDAR depth the node aligns to.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from dpt_ros.geometry.lidar_projection import project_lidar
from dpt_ros.geometry.transforms import make_transform


class CalibrationError(ValueError):
    """A KITTI calibration file is missing, malformed or lacks a needed key."""


@dataclass(frozen=True)
class CameraCalibration:
    """K: (3, 3) pixels; T_cam_velo: (4, 4) maps Velodyne points (m) into the rectified camera frame."""

    K: np.ndarray
    T_cam_velo: np.ndarray


def read_calibration_file(path: str | Path) -> dict[str, np.ndarray]:
    """`key: v1 v2 ...` lines -> {key: float64 values}; keys with non-numeric values (calib_time) are skipped."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"{path}: calibration file does not exist")
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        key, separator, rest = line.partition(":")
        if not separator:
            if line.strip():
                raise CalibrationError(f"{path}:{number}: expected 'key: values', got {line!r}")
            continue
        try:
            values[key.strip()] = np.array([float(v) for v in rest.split()], dtype=np.float64)
        except ValueError:
            continue  # e.g. "calib_time: 09-Jan-2012 13:57:47"
    return values


def _matrix(values: dict[str, np.ndarray], key: str, shape: tuple[int, ...], path: Path) -> np.ndarray:
    if key not in values:
        raise CalibrationError(f"{path}: missing key {key!r}")
    if values[key].size != int(np.prod(shape)):
        raise CalibrationError(f"{path}: {key} has {values[key].size} values, expected {int(np.prod(shape))}")
    return values[key].reshape(shape)


@lru_cache(maxsize=64)
def load_camera_calibration(date_dir: str | Path, camera: int = 2) -> CameraCalibration:
    """Calibration of rectified camera `camera` (2 = left colour) from a KITTI raw date folder."""
    date_dir = Path(date_dir)
    cam_path, velo_path = date_dir / "calib_cam_to_cam.txt", date_dir / "calib_velo_to_cam.txt"
    cam, velo = read_calibration_file(cam_path), read_calibration_file(velo_path)
    projection = _matrix(cam, f"P_rect_0{camera}", (3, 4), cam_path)
    rectification = make_transform(_matrix(cam, "R_rect_00", (3, 3), cam_path), (0.0, 0.0, 0.0))
    velo_to_cam = make_transform(_matrix(velo, "R", (3, 3), velo_path), _matrix(velo, "T", (3,), velo_path))
    K = projection[:, :3]
    # P = K [I | t]: camera N's offset from camera 0
    offset = make_transform(np.eye(3), np.linalg.solve(K, projection[:, 3]))
    return CameraCalibration(K=K, T_cam_velo=offset @ rectification @ velo_to_cam)


def read_velodyne(path: str | Path) -> np.ndarray:
    """A KITTI Velodyne scan: (N, 4) float32 x, y, z (m), reflectance. Raises naming the file if malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Velodyne scan does not exist")
    size = path.stat().st_size
    if size % 16:
        raise ValueError(f"{path}: {size} bytes is not a whole number of (x, y, z, reflectance) float32 points")
    return np.fromfile(path, dtype=np.float32).reshape(-1, 4)


def velodyne_depth(points: np.ndarray, calibration: CameraCalibration, image_shape: tuple[int, int]) -> np.ndarray:
    """Sparse depth (H, W) float32 metres along the optical axis, 0 where no point landed (KITTI PNG
    convention), the nearest point winning where several land in one pixel. points: (N, >= 3)."""
    height, width = image_shape
    depth = project_lidar(points[:, :3], calibration.T_cam_velo, calibration.K, (width, height))
    return np.nan_to_num(depth, nan=0.0)


def velodyne_path_for_image(image_path: str | Path) -> Path:
    """`.../<drive>/image_02/data/<frame>.png` -> `.../<drive>/velodyne_points/data/<frame>.bin`."""
    image_path = Path(image_path)
    if image_path.parent.name != "data" or not image_path.parent.parent.name.startswith("image_0"):
        raise ValueError(f"{image_path}: not in the KITTI raw layout <drive>/image_0N/data/<frame>.png")
    return image_path.parent.parent.parent / "velodyne_points" / "data" / (image_path.stem + ".bin")
