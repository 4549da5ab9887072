"""The real KITTI raw frame (2011_09_26 drive 0001, frame 5): our projection of its Velodyne scan with its
raw calibration files, against KITTI's own depth-completion PNGs of the same frame.

KITTI's velodyne_raw_image_02.png is not a plain rounding of this scan (KITTI built it with its own
pipeline), so pixels do not coincide one for one. The bounds below sit between what the right calibration
gives and what a wrong one gives, measured with an independent implementation (realdata README: 19,137
projected pixels vs KITTI's 19,154; ~1/3 coinciding exactly; 86.6 % of KITTI's pixels with one of ours
within 1 px; median |dz| 5 cm for the best match within 1 px; 7 cm and ~96 % within 0.5 m against the
ground truth) and reproduced here: 19,137 / 32.6 % / 86.6 % / 5.0 cm / 7.1 cm / 95.9 %. Dropping the
rectification, the baseline column of P_rect_02 or turning the extrinsic by 0.5 degree each breaks at
least one bound (test_a_wrong_calibration_fails_the_bounds).
"""

from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dpt_ros.geometry.lidar_projection import project_lidar
from dpt_train.kitti_raw import load_camera_calibration, read_calibration_file, read_velodyne
from support.realdata import KITTI_RAW, real_data

pytestmark = real_data(KITTI_RAW)

KITTI_DEPTH_SCALE = 256.0  # uint16 PNG value / 256 = metres, 0 = no value
NEIGHBOURHOOD = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)]  # "within 1 px": the 3x3 block


@dataclass(frozen=True)
class Agreement:
    projected: int  # pixels our projection lights
    exact_fraction: float  # of KITTI's velodyne_raw pixels, lit by us at the same pixel
    within_1px_fraction: float  # of KITTI's velodyne_raw pixels, with one of ours in the 3x3 block around it
    median_dz_within_1px: float  # metres: per KITTI pixel, the best |dz| among ours in its 3x3 block
    median_dz_groundtruth: float  # metres, where ours and the ground truth both have a value
    groundtruth_within_half_metre: float  # fraction of those with |dz| <= 0.5 m


def _kitti_png(name: str) -> np.ndarray:
    values = cv2.imread(str(KITTI_RAW / "depth_completion" / name), cv2.IMREAD_UNCHANGED)
    assert values is not None and values.dtype == np.uint16 and values.shape == (375, 1242), name
    return values.astype(np.float32) / KITTI_DEPTH_SCALE


def agreement(T_cam_velo: np.ndarray, K: np.ndarray) -> Agreement:
    """Project the real scan with (T_cam_velo, K) and compare with KITTI's PNGs."""
    kitti, groundtruth = _kitti_png("velodyne_raw_image_02.png"), _kitti_png("groundtruth_image_02.png")
    height, width = kitti.shape
    scan = read_velodyne(KITTI_RAW / "raw" / "lidar_data.bin")
    ours = project_lidar(scan[:, :3], T_cam_velo, K, (width, height))  # NaN = no point
    lit = np.isfinite(ours)
    theirs = kitti > 0
    padded = np.pad(ours, 1, constant_values=np.nan)
    best = np.full(ours.shape, np.inf, dtype=np.float32)
    for dr, dc in NEIGHBOURHOOD:
        shifted = padded[1 + dr : 1 + dr + height, 1 + dc : 1 + dc + width]
        best = np.fmin(best, np.abs(shifted - kitti))  # fmin ignores NaN (no point of ours there)
    within = theirs & np.isfinite(best)
    both = lit & (groundtruth > 0)
    dz_groundtruth = np.abs(ours[both] - groundtruth[both])
    return Agreement(
        projected=int(lit.sum()),
        exact_fraction=float((lit & theirs).sum() / theirs.sum()),
        within_1px_fraction=float(within.sum() / theirs.sum()),
        median_dz_within_1px=float(np.median(best[within])),
        median_dz_groundtruth=float(np.median(dz_groundtruth)),
        groundtruth_within_half_metre=float(np.mean(dz_groundtruth <= 0.5)),
    )


def problems(result: Agreement) -> list[str]:
    """Which bounds `result` breaks. Each bound has margin on both sides: the right calibration (measured
    values in the module docstring) passes, each wrong one of test_a_wrong_calibration_fails_the_bounds
    breaks at least one."""
    checks = {
        # KITTI's own count is 19,154; a missing rectification loses ~200 pixels off the image edges
        "projected pixels within 0.5 % of KITTI's 19,154": abs(result.projected - 19_154) <= 0.005 * 19_154,
        "exact coincidence >= 30 %": result.exact_fraction >= 0.30,  # measured 32.6 %; wrong ones <= 23 %
        "within 1 px >= 85 %": result.within_1px_fraction >= 0.85,  # measured 86.6 %
        "median |dz| of the best match within 1 px <= 6.5 cm": result.median_dz_within_1px <= 0.065,  # 5.0 cm
        "median |dz| against the ground truth <= 8.5 cm": result.median_dz_groundtruth <= 0.085,  # 7.1 cm
        ">= 95 % of ground-truth pixels within 0.5 m": result.groundtruth_within_half_metre >= 0.95,  # 95.9 %
    }
    return [name for name, ok in checks.items() if not ok]


def test_projection_with_the_raw_calibration_matches_kittis_own_depth_pngs():
    calibration = load_camera_calibration(KITTI_RAW / "raw")
    result = agreement(calibration.T_cam_velo, calibration.K)
    assert problems(result) == [], result
    assert result.projected == pytest.approx(19_137, abs=20), result  # the README's independent count


def _raw_parts() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(K, baseline offset, R_rect (4x4), velo->cam (4x4)) straight from the files."""
    cam = read_calibration_file(KITTI_RAW / "raw" / "calib_cam_to_cam.txt")
    velo = read_calibration_file(KITTI_RAW / "raw" / "calib_velo_to_cam.txt")
    projection = cam["P_rect_02"].reshape(3, 4)
    offset, rectify, velo_to_cam = np.eye(4), np.eye(4), np.eye(4)
    offset[:3, 3] = np.linalg.solve(projection[:, :3], projection[:, 3])
    rectify[:3, :3] = cam["R_rect_00"].reshape(3, 3)
    velo_to_cam[:3, :3], velo_to_cam[:3, 3] = velo["R"].reshape(3, 3), velo["T"]
    return projection[:, :3], offset, rectify, velo_to_cam


@pytest.mark.parametrize("mistake", ["no rectification", "no baseline column", "extrinsic yawed 0.5 deg"])
def test_a_wrong_calibration_fails_the_bounds(mistake):
    K, offset, rectify, velo_to_cam = _raw_parts()
    if mistake == "no rectification":
        rectify = np.eye(4)
    elif mistake == "no baseline column":
        offset = np.eye(4)
    else:
        velo_to_cam = velo_to_cam.copy()
        velo_to_cam[:3, :3] = Rotation.from_euler("y", 0.5, degrees=True).as_matrix() @ velo_to_cam[:3, :3]
    assert problems(agreement(offset @ rectify @ velo_to_cam, K)) != []
