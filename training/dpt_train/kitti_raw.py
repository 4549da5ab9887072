"""Sparse ground truth from raw KITTI Velodyne scans and calibration files.

KITTI raw ships, per date folder, `calib_cam_to_cam.txt` (P_rect_0N 3x4, R_rect_00 3x3, ...) and
`calib_velo_to_cam.txt` (R 3x3, T 3), and per frame `velodyne_points/data/<frame>.bin` (float32 x, y, z,
reflectance). A Velodyne point x maps to rectified camera N pixels by P_rect_0N @ R_rect_00 @ (R x + T).
We split P_rect_0N = K [I | t] and hand (K, T_cam_velo) to the node's own projection
(`dpt_ros.geometry.lidar_projection.project_lidar`: pixel-centre rounding, nearest point per pixel), so the
training targets are built exactly like the LiDAR depth the node aligns to.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# one reader of KITTI's raw formats, shared with the evaluator's KITTI drive source
from dpt_ros.bags.kitti_raw import (  # noqa: F401 - re-exported for the trainer's modules
    CalibrationError,
    CameraCalibration,
    load_camera_calibration,
    read_calibration_file,
    read_velodyne,
)
from dpt_ros.geometry.lidar_projection import project_lidar


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
