"""Sparse ground truth from raw Velodyne scans + KITTI calibration, through the node's projection."""

import numpy as np
import pytest

from dpt_train.data import BadSampleError, KittiDepthDataset, read_split
from dpt_train.kitti_raw import CalibrationError, load_camera_calibration, read_calibration_file
from dpt_train.synthetic_kitti import SyntheticKittiSpec, synthetic_calibration, write_synthetic_kitti
from dpt_train.transforms import AugmentConfig

SPEC = SyntheticKittiSpec(height=80, width=160, drives=2, frames_per_drive=7, lidar_rows=20,
                          lidar_points_per_row=60, write_velodyne=True)
EVAL = AugmentConfig(kb_height=64, kb_width=128)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return write_synthetic_kitti(tmp_path_factory.mktemp("kitti_raw"), SPEC)


def _dataset(paths, source, **kwargs):
    return KittiDepthDataset(paths["test"], paths["image_root"], paths["depth_root"], False, EVAL,
                             depth_source=source, **kwargs)


def test_calibration_composes_p_rect_r_rect_and_velo_to_cam(paths):
    calibration = load_camera_calibration(paths["image_root"] / "2011_09_26")
    reference = synthetic_calibration(SPEC)
    point = np.array([12.0, 1.5, -0.7])  # Velodyne frame, metres
    camera = reference["R_rect_00"] @ (reference["R"] @ point + reference["T"])
    pixel = reference["P_rect_02"] @ np.append(camera, 1.0)
    ours = calibration.T_cam_velo @ np.append(point, 1.0)
    projected = calibration.K @ ours[:3]
    np.testing.assert_allclose(projected / projected[2], pixel / pixel[2], atol=1e-9)
    assert ours[2] == pytest.approx(pixel[2])  # depth along the optical axis


def test_velodyne_depth_reproduces_the_annotated_png(paths):
    png, velodyne = _dataset(paths, "png"), _dataset(paths, "velodyne")
    assert len(velodyne) == len(read_split(paths["test"])) == 7  # "None" lines are usable with raw scans
    assert len(png) == 2
    for png_index, velodyne_index in ((0, 5), (1, 6)):  # annotated frames 5 and 6
        expected = png[png_index]["depth"].numpy()
        got = velodyne[velodyne_index]["depth"].numpy()
        assert np.array_equal(got > 0, expected > 0) and (got > 0).sum() > 100
        np.testing.assert_allclose(got, expected, atol=0.5 / 256 + 1e-4)  # PNG is quantised to 1/256 m


def test_broken_calibration_or_scan_names_the_file(paths, tmp_path):
    calib = tmp_path / "calib_cam_to_cam.txt"
    calib.write_text("calib_time: 09-Jan-2012 13:57:47\nR_rect_00: 1 0 0 0 1 0 0 0 1\n")
    assert set(read_calibration_file(calib)) == {"R_rect_00"}
    (tmp_path / "calib_velo_to_cam.txt").write_text("R: 1 0 0 0 1 0 0 0 1\nT: 0 0 0\n")
    with pytest.raises(CalibrationError, match="missing key 'P_rect_02'"):
        load_camera_calibration(tmp_path)
    dataset = _dataset(paths, "velodyne")
    scan = paths["image_root"] / "2011_09_26/2011_09_26_drive_0002_sync/velodyne_points/data/0000000003.bin"
    original = scan.read_bytes()
    try:
        scan.write_bytes(original[:-6])
        with pytest.raises(BadSampleError, match="not a whole number") as error:
            dataset[3]
        assert error.value.path == str(scan)
    finally:
        scan.write_bytes(original)
