"""Sparse ground truth from raw KITTI Velodyne scans and calibration files.

KITTI ships calibration in two formats, both read by `load_camera_calibration`:
  - raw (per date folder): `calib_cam_to_cam.txt` (P_rect_0N 3x4, R_rect_00 3x3, ...) and
    `calib_velo_to_cam.txt` (R 3x3, T 3);
  - object / tracking benchmarks (one file per frame): `P0`..`P3` 3x4, `R0_rect` 3x3, `Tr_velo_to_cam` 3x4.
Per frame, `velodyne_points/data/<frame>.bin` (raw) or `velodyne/<frame>.bin` (object) hold float32 x, y, z,
reflectance. A Velodyne point x maps to rectified camera N pixels by P_N @ R_rect @ (R x + T).
We split P_N = K [I | t] (t: camera N's offset from camera 0, P's last column, the stereo baseline) and hand
(K, T_cam_velo) to the node's own projection (`dpt_ros.geometry.lidar_projection.project_lidar`: pixel-centre
rounding, nearest point per pixel), so the training targets are built exactly like the LiDAR depth the node
aligns to.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from dpt_ros.geometry.lidar_projection import project_lidar


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
def load_camera_calibration(source: str | Path, camera: int = 2) -> CameraCalibration:
    """Calibration of rectified camera `camera` (2 = left colour), from a KITTI raw date folder (holding
    calib_cam_to_cam.txt and calib_velo_to_cam.txt) or an object-format calibration file (PN, R0_rect,
    Tr_velo_to_cam in one file)."""
    source = Path(source)
    if source.is_file():
        values = read_calibration_file(source)
        projection = _matrix(values, f"P{camera}", (3, 4), source)
        rectification = _matrix(values, "R0_rect", (3, 3), source)
        velo_to_cam = _matrix(values, "Tr_velo_to_cam", (3, 4), source)
    elif source.is_dir():
        cam_path, velo_path = source / "calib_cam_to_cam.txt", source / "calib_velo_to_cam.txt"
        cam, velo = read_calibration_file(cam_path), read_calibration_file(velo_path)
        projection = _matrix(cam, f"P_rect_0{camera}", (3, 4), cam_path)
        rectification = _matrix(cam, "R_rect_00", (3, 3), cam_path)
        velo_to_cam = np.hstack([_matrix(velo, "R", (3, 3), velo_path), _matrix(velo, "T", (3, 1), velo_path)])
    else:
        raise CalibrationError(f"{source}: neither a KITTI raw date folder nor an object-format calibration file")
    return _compose(projection, rectification, velo_to_cam)


def _compose(projection: np.ndarray, rectification: np.ndarray, velo_to_cam: np.ndarray) -> CameraCalibration:
    """(K, T_cam_velo) with K @ T_cam_velo[:3] == projection @ R_rect @ velo_to_cam (3x4, 3x3, 3x4)."""
    rectify = np.eye(4)
    rectify[:3, :3] = rectification
    velo = np.eye(4)
    velo[:3] = velo_to_cam
    K = projection[:, :3]
    offset = np.eye(4)
    offset[:3, 3] = np.linalg.solve(K, projection[:, 3])  # P = K [I | t]: camera N's offset from camera 0
    return CameraCalibration(K=K, T_cam_velo=offset @ rectify @ velo)


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
