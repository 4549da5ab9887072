"""KITTI raw drives: calibration, Velodyne scans, annotated depth, and a drive folder as an evaluation source.

Layout (KITTI raw, with the depth benchmark's annotated depth optionally merged into the drive folder):

    <date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt
    <date>/<date>_drive_<NNNN>_sync/image_02/data/<frame:010d>.png      (+ image_02/timestamps.txt)
    <date>/<date>_drive_<NNNN>_sync/velodyne_points/data/<frame:010d>.bin (+ velodyne_points/timestamps.txt)
    <date>/<date>_drive_<NNNN>_sync/proj_depth/groundtruth/image_02/<frame:010d>.png   (optional)

A Velodyne point x maps to rectified camera N pixels by P_rect_0N @ R_rect_00 @ (R x + T). We split
P_rect_0N = K [I | t] and hand (K, T_cam_velo) to the node's own projection, so KITTI frames go through
exactly the code path of a bag. Ground-truth PNGs are uint16, metres = value / 256, 0 = invalid.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dpt_ros.alignment.lidar_depth import LensModel
from dpt_ros.bags.frames import BagFrames, FrameInputs, PairedFrame, SkippedFrame, TopicSelection
from dpt_ros.bags.rosbag_io import BagError
from dpt_ros.geometry.camera import PinholeIntrinsics

KITTI_DEPTH_SCALE = 256.0  # PNG value per metre
HDL64_BEAMS = 64  # KITTI's Velodyne HDL-64E
CAMERA = 2  # left colour camera
_FRAME_PERIOD_NS = 100_000_000  # 10 Hz, when a drive has no timestamps.txt


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
def load_camera_calibration(date_dir: str | Path, camera: int = CAMERA) -> CameraCalibration:
    """Calibration of rectified camera `camera` (2 = left colour) from a KITTI raw date folder."""
    date_dir = Path(date_dir)
    cam_path, velo_path = date_dir / "calib_cam_to_cam.txt", date_dir / "calib_velo_to_cam.txt"
    cam, velo = read_calibration_file(cam_path), read_calibration_file(velo_path)
    projection = _matrix(cam, f"P_rect_0{camera}", (3, 4), cam_path)
    rectification = np.eye(4)
    rectification[:3, :3] = _matrix(cam, "R_rect_00", (3, 3), cam_path)
    velo_to_cam = np.eye(4)
    velo_to_cam[:3, :3] = _matrix(velo, "R", (3, 3), velo_path)
    velo_to_cam[:3, 3] = _matrix(velo, "T", (3,), velo_path)
    K = projection[:, :3]
    offset = np.eye(4)
    offset[:3, 3] = np.linalg.solve(K, projection[:, 3])  # P = K [I | t]: camera N's offset from camera 0
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


def read_depth_png(path: str | Path) -> np.ndarray:
    """A KITTI depth PNG (uint16, value / 256 = metres, 0 = invalid) -> (H, W) float32 metres, NaN invalid."""
    depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if depth is None or depth.dtype != np.uint16 or depth.ndim != 2:
        raise ValueError(f"{path}: not a single-channel uint16 KITTI depth PNG")
    return np.where(depth > 0, depth.astype(np.float32) / np.float32(KITTI_DEPTH_SCALE), np.float32(np.nan))


def is_kitti_drive(path: Path) -> bool:
    """Whether ``path`` is a KITTI raw drive folder (image_02/data and velodyne_points/data inside)."""
    return (path / f"image_0{CAMERA}" / "data").is_dir() and (path / "velodyne_points" / "data").is_dir()


def _timestamps_ns(path: Path, count: int) -> list[int] | None:
    """KITTI timestamps.txt ('2011-09-26 13:02:25.964389445' per line) as ns since the epoch (UTC)."""
    if not path.is_file():
        return None
    stamps = []
    for line in path.read_text().split("\n")[:count]:
        day, _, clock = line.strip().partition(" ")
        seconds, _, fraction = clock.partition(".")
        base = datetime.strptime(f"{day} {seconds}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
        stamps.append(int(base.timestamp()) * 1_000_000_000 + int(fraction.ljust(9, "0")[:9]))
    return stamps if len(stamps) == count else None


def ground_truth_folder(drive: Path, explicit: Path | None = None) -> Path | None:
    """Where the drive's annotated depth for camera 2 is: ``explicit`` (a folder of <frame>.png, or a KITTI
    depth tree's drive folder), else <drive>/proj_depth/groundtruth/image_02, else None."""
    for candidate in ([explicit] if explicit else []) + [drive]:
        for folder in (candidate / "proj_depth" / "groundtruth" / f"image_0{CAMERA}", candidate):
            if folder.is_dir() and any(folder.glob("*.png")):
                return folder
    if explicit is not None:
        raise BagError(f"no ground-truth PNGs in {explicit} (expected <frame>.png or proj_depth/groundtruth/"
                       f"image_0{CAMERA}/<frame>.png)")
    return None


def kitti_frames(drive: Path, max_frames: int | None, ground_truth: Path | None = None,
                 ) -> tuple[BagFrames, Iterator[tuple[PairedFrame | SkippedFrame, FrameInputs | None, float]]]:
    """A KITTI raw drive read like a bag (``dpt_ros.bags.frames.decoded_frames``): (pair, inputs, decode ms)
    or (skipped frame, None, 0) per image in frame order. The pair carries no messages (None)."""
    drive = Path(drive)
    images = sorted((drive / f"image_0{CAMERA}" / "data").glob("*.png"))
    if not images:
        raise BagError(f"no images in {drive / f'image_0{CAMERA}' / 'data'}")
    calibration_dir = next((d for d in (drive.parent, drive) if (d / "calib_cam_to_cam.txt").is_file()), None)
    if calibration_dir is None:
        raise BagError(f"no calib_cam_to_cam.txt next to or inside {drive} (KITTI keeps it in the date folder)")
    try:
        calibration = load_camera_calibration(calibration_dir, CAMERA)
    except CalibrationError as error:
        raise BagError(str(error)) from None
    truth_dir = ground_truth_folder(drive, ground_truth)
    total = min(len(images), max_frames) if max_frames else len(images)
    image_stamps = _timestamps_ns(drive / f"image_0{CAMERA}" / "timestamps.txt", len(images))
    scan_stamps = _timestamps_ns(drive / "velodyne_points" / "timestamps.txt", len(images))
    selection = TopicSelection(f"image_0{CAMERA}/data", str(calibration_dir / f"calib_cam_to_cam.txt P_rect_0{CAMERA}"),
                               "velodyne_points/data", str(truth_dir) if truth_dir else None)

    def frames() -> Iterator[tuple[PairedFrame | SkippedFrame, FrameInputs | None, float]]:
        for index, image_path in enumerate(images[:total]):
            stamp = image_stamps[index] if image_stamps else index * _FRAME_PERIOD_NS
            offset = scan_stamps[index] - stamp if (scan_stamps and image_stamps) else 0
            scan_path = drive / "velodyne_points" / "data" / f"{image_path.stem}.bin"
            if not scan_path.is_file():
                yield SkippedFrame(index, stamp, "no Velodyne scan for this frame"), None, 0.0
                continue
            start = time.perf_counter()
            try:
                inputs = _frame_inputs(image_path, scan_path, calibration, truth_dir)
            except ValueError as error:
                yield SkippedFrame(index, stamp, f"bad input: {error}"), None, 0.0
                continue
            yield PairedFrame(index, stamp, None, None, None, offset), inputs, (time.perf_counter() - start) * 1e3

    return BagFrames(selection, total), frames()


def _frame_inputs(image_path: Path, scan_path: Path, calibration: CameraCalibration, truth_dir: Path | None,
                  ) -> FrameInputs:
    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{image_path} cannot be decoded as an image")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    height, width = rgb.shape[:2]
    K = calibration.K
    intrinsics = PinholeIntrinsics(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), width, height)
    truth: Any = None
    truth_path = truth_dir / image_path.name if truth_dir else None
    if truth_path is not None and truth_path.is_file():
        truth = read_depth_png(truth_path)
        if truth.shape != (height, width):
            raise ValueError(f"{truth_path} is {truth.shape[1]}x{truth.shape[0]}, the image {width}x{height}")
    xyz = read_velodyne(scan_path)[:, :3]
    return FrameInputs(rgb, intrinsics, LensModel(K, (width, height)), xyz, None, calibration.T_cam_velo,
                       "calibration", f"camera_0{CAMERA}", truth, HDL64_BEAMS)
