"""dpt_train on the real KITTI raw frame (2011_09_26 drive 0001, frame 5), laid out as KITTI ships it in a
temporary folder: the KB crop of the real 1242x375 image, the focal of its split line and calibration, the
annotated ground truth, and the Velodyne-derived ground truth against KITTI's own velodyne_raw PNG."""

import cv2
import numpy as np
import pytest

from dpt_train.data import KittiDepthDataset
from dpt_train.kitti_raw import load_camera_calibration
from dpt_train.transforms import AugmentConfig
from support.realdata import KITTI_RAW, real_data

pytestmark = real_data(KITTI_RAW)

DRIVE = "2011_09_26_drive_0001_sync"
FRAME = "0000000005"
FOCAL = 721.5377  # what the Eigen / BTS split files give for 2011_09_26 (pixels)
NO_AUGMENTATION = AugmentConfig(crop_height=0, crop_width=0, rotation_degrees=0.0, flip_probability=0.0,
                                photometric_probability=0.0)


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    """The real files at their places in the KITTI raw + depth-annotation layout (symlinks), and a split."""
    root = tmp_path_factory.mktemp("kitti")
    date = root / "raw" / "2011_09_26"
    links = {
        date / "calib_cam_to_cam.txt": KITTI_RAW / "raw" / "calib_cam_to_cam.txt",
        date / "calib_velo_to_cam.txt": KITTI_RAW / "raw" / "calib_velo_to_cam.txt",
        date / DRIVE / "image_02" / "data" / f"{FRAME}.png": KITTI_RAW / "raw" / "sync_rect" / "cam_02.png",
        date / DRIVE / "velodyne_points" / "data" / f"{FRAME}.bin": KITTI_RAW / "raw" / "lidar_data.bin",
        root / "depth" / DRIVE / "proj_depth" / "groundtruth" / "image_02" / f"{FRAME}.png":
            KITTI_RAW / "depth_completion" / "groundtruth_image_02.png",
    }
    for link, target in links.items():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    split = root / "split.txt"
    split.write_text(f"2011_09_26/{DRIVE}/image_02/data/{FRAME}.png "
                     f"{DRIVE}/proj_depth/groundtruth/image_02/{FRAME}.png {FOCAL}\n")
    return {"split": split, "image_root": root / "raw", "depth_root": root / "depth", "date": date}


def _dataset(kitti, train: bool, source: str) -> KittiDepthDataset:
    return KittiDepthDataset(kitti["split"], kitti["image_root"], kitti["depth_root"], train, NO_AUGMENTATION,
                             depth_source=source)


def test_evaluation_sample_is_the_kb_crop_with_full_size_ground_truth_and_the_calibrated_focal(kitti):
    sample = _dataset(kitti, train=False, source="png")[0]
    rgb = cv2.cvtColor(cv2.imread(str(KITTI_RAW / "raw" / "sync_rect" / "cam_02.png")), cv2.COLOR_BGR2RGB)
    assert rgb.shape == (375, 1242, 3)
    # KB crop: 352 x 1216, anchored at the bottom, centred: rows 23..374, columns 13..1228
    assert (sample["crop_top"], sample["crop_left"]) == (23, 13)
    np.testing.assert_array_equal(sample["rgb"].numpy(), rgb[23:, 13:1229])
    groundtruth = cv2.imread(str(KITTI_RAW / "depth_completion" / "groundtruth_image_02.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(sample["depth"].numpy(), groundtruth.astype(np.float32) / 256.0)
    valid = sample["depth"].numpy()[sample["depth"].numpy() > 0]
    assert 0.18 < valid.size / groundtruth.size < 0.21 and 5.3 < valid.min() and valid.max() < 85.0  # README: ~19 %
    # the split's focal is the rectified camera 2's fx of the drive's calibration
    assert sample["focal"] == pytest.approx(FOCAL)
    assert load_camera_calibration(kitti["date"]).K[0, 0] == pytest.approx(FOCAL, abs=1e-4)


def test_training_sample_crops_image_and_ground_truth_together(kitti):
    sample = _dataset(kitti, train=True, source="png")[0]
    groundtruth = cv2.imread(str(KITTI_RAW / "depth_completion" / "groundtruth_image_02.png"), cv2.IMREAD_UNCHANGED)
    assert tuple(sample["image"].shape) == (3, 352, 1216)
    np.testing.assert_array_equal(sample["depth"].numpy(), groundtruth[23:, 13:1229].astype(np.float32) / 256.0)


def test_velodyne_ground_truth_from_the_raw_layout_matches_kittis_velodyne_raw(kitti):
    """depth_source='velodyne' finds scan and calibration through the layout and projects them like the node."""
    depth = _dataset(kitti, train=False, source="velodyne")[0]["depth"].numpy()
    kitti_raw = cv2.imread(str(KITTI_RAW / "depth_completion" / "velodyne_raw_image_02.png"), cv2.IMREAD_UNCHANGED)
    kitti_raw = kitti_raw.astype(np.float32) / 256.0
    ours, theirs = depth > 0, kitti_raw > 0
    # README (independent implementation): 19,137 pixels, about a third coinciding exactly with KITTI's,
    # median |dz| ~3 cm there (KITTI's PNG is a different rounding of the same scan)
    assert abs(int(ours.sum()) - 19_137) <= 20
    both = ours & theirs
    assert both.sum() / theirs.sum() >= 0.30
    assert np.median(np.abs(depth[both] - kitti_raw[both])) <= 0.05
