"""KITTI object-format calibration (P0..P3, R0_rect, Tr_velo_to_cam in one file), read by the same
`load_camera_calibration` as the raw format, on the three real object frames: the node's projection of
their real scans lands exactly where P2 · R0_rect · Tr_velo_to_cam, applied directly, puts every point."""

import cv2
import numpy as np
import pytest

from dpt_ros.geometry.lidar_projection import project_points
from dpt_train.kitti_raw import CalibrationError, load_camera_calibration, read_calibration_file, read_velodyne
from support.realdata import KITTI_OBJECT, real_data

pytestmark = real_data(KITTI_OBJECT)
FRAMES = ["000000", "000001", "000002"]


def _direct(frame: str, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, w) of P2 · R0_rect · Tr_velo_to_cam · [x; 1] from the file's matrices, float64, no splitting."""
    values = read_calibration_file(KITTI_OBJECT / "calib" / f"{frame}.txt")
    P2 = values["P2"].reshape(3, 4)
    R0 = np.eye(4)
    R0[:3, :3] = values["R0_rect"].reshape(3, 3)
    Tr = np.vstack([values["Tr_velo_to_cam"].reshape(3, 4), [0, 0, 0, 1]])
    homogeneous = np.hstack([points, np.ones((len(points), 1))])
    u, v, w = (P2 @ R0 @ Tr @ homogeneous.T)
    return u / w, v / w, w


@pytest.mark.parametrize("frame", FRAMES)
def test_object_frames_project_exactly_as_p2_r0_tr(frame):
    calibration = load_camera_calibration(KITTI_OBJECT / "calib" / f"{frame}.txt")
    image = cv2.imread(str(KITTI_OBJECT / "image_2" / f"{frame}.png"))
    height, width = image.shape[:2]
    scan = read_velodyne(KITTI_OBJECT / "velodyne" / f"{frame}.bin")
    assert 115_000 <= len(scan) <= 127_000  # the README's full scans
    points = scan[:, :3].astype(np.float64)  # float64 throughout: the comparison is then exact to ~1e-12 px
    ours = project_points(points, calibration.T_cam_velo, calibration.K, (width, height), min_range=0.0)
    u, v, w = _direct(frame, points)
    # What the direct formula puts in front of the camera and inside the image (pixel centres at integers)
    inside = (w > 1e-6) & (np.floor(u + 0.5) >= 0) & (np.floor(u + 0.5) < width) \
        & (np.floor(v + 0.5) >= 0) & (np.floor(v + 0.5) < height)
    np.testing.assert_array_equal(ours.index, np.flatnonzero(inside))
    assert len(ours) > 15_000  # a real scan covers a good part of the image
    # Pixel coordinates in the ~1e3 range, a dozen float64 operations each: 1e-9 px is ~1e4 ulps of slack.
    np.testing.assert_allclose(ours.u, u[inside], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.v, v[inside], rtol=0, atol=1e-9)
    # Depth is the third row of P2 · R0 · Tr, baseline column included (P2[2, 3] = 4.98e-3 m for 000000).
    np.testing.assert_allclose(ours.depth, w[inside].astype(np.float32), rtol=1e-6)


def test_dropping_p2s_baseline_column_would_fail_the_comparison():
    """P2's last column (camera 2 sits ~6 cm from camera 0) moves pixels by fx * 0.06 m / z: far more than
    the 1e-9 px above, so a reader that dropped it could not pass test_object_frames_project_exactly..."""
    values = read_calibration_file(KITTI_OBJECT / "calib" / "000001.txt")
    P2 = values["P2"].reshape(3, 4)
    assert np.linalg.solve(P2[:, :3], P2[:, 3])[0] == pytest.approx(0.06, abs=0.005)
    calibration = load_camera_calibration(KITTI_OBJECT / "calib" / "000001.txt")
    scan = read_velodyne(KITTI_OBJECT / "velodyne" / "000001.bin")[:, :3].astype(np.float64)
    ours = project_points(scan, calibration.T_cam_velo, calibration.K, (1242, 375))
    without = np.linalg.inv(np.vstack([np.hstack([np.eye(3), np.linalg.solve(P2[:, :3], P2[:, 3])[:, None]]),
                                       [0, 0, 0, 1]])) @ calibration.T_cam_velo
    shifted = project_points(scan, without, calibration.K, (1242, 375))
    common, ours_at, shifted_at = np.intersect1d(ours.index, shifted.index, return_indices=True)
    shift = ours.u[ours_at] - shifted.u[shifted_at]
    assert len(common) > 15_000 and np.median(np.abs(shift)) > 1.0  # pixels


def test_object_calibration_errors_name_the_file(tmp_path):
    broken = tmp_path / "000000.txt"
    text = (KITTI_OBJECT / "calib" / "000000.txt").read_text()
    broken.write_text("\n".join(line for line in text.splitlines() if not line.startswith("R0_rect")))
    with pytest.raises(CalibrationError, match=f"{broken}: missing key 'R0_rect'"):
        load_camera_calibration(broken)
    with pytest.raises(CalibrationError, match="neither a KITTI raw date folder nor an object-format"):
        load_camera_calibration(tmp_path / "absent.txt")
