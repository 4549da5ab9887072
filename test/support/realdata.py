"""The real recordings in ../shared/realdata (see its README.md) and the marks a test on them carries.

Every real-data test is marked `realdata` (scripts/test reports how many ran) and skips, naming what is
missing, where the folder is absent (e.g. a user's clone without the shared data).
"""

from pathlib import Path
from typing import Any

import pytest

from support.environment import REAL_DATA

KITTI_RAW = REAL_DATA / "kitti_raw_2011_09_26_drive_0001_frame5"
KITTI_OBJECT = REAL_DATA / "kitti_object_training"
CAMERA_BAGS = [REAL_DATA / "bags" / "ros1_real_camera" / name for name in ("aruco_images.bag", "aruco_marker.bag")]
LUMINAR_BAG = REAL_DATA / "bags" / "ros1_luminar_clouds" / "luminar_test.bag"


def real_data(*needed: Path) -> list[pytest.MarkDecorator]:
    """Marks for a test (or `pytestmark` of a module) that reads `needed` from the real recordings."""
    missing = [path for path in needed if not path.exists()]
    reason = (f"real recordings not found: {missing[0]} (expected the shared realdata folder next to the checkout, "
              f"{REAL_DATA}, or set DPT_ROS_REAL_DATA to it)") if missing else ""
    return [pytest.mark.realdata, pytest.mark.skipif(bool(missing), reason=reason)]


def camera_bag_frame(path: Path) -> tuple[Any, Any]:
    """(CompressedImage, the CameraInfo nearest it in time) of a real camera bag, as rosbags reads them (ROS 1
    field names: K, D, P)."""
    from dpt_ros.bags.rosbag_io import bag_topics, iterate_messages, open_bag

    reader = open_bag(path)
    try:
        messages = list(iterate_messages(reader, [topic.name for topic in bag_topics(reader)]))
    finally:
        reader.close()
    images = [(time, message) for _, time, message in messages if hasattr(message, "format")]
    infos = [(time, message) for _, time, message in messages if hasattr(message, "distortion_model")]
    assert len(images) == 1 and infos, f"{path}: expected one CompressedImage and its CameraInfo"
    image_time, image = images[0]
    return image, min(infos, key=lambda item: abs(item[0] - image_time))[1]
