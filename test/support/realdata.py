"""The real recordings in ../shared/realdata (see its README.md) and the marks a test on them carries.

Every real-data test is marked `realdata` (scripts/test reports how many ran) and skips, naming what is
missing, where the folder is absent (e.g. a user's clone without the shared data).
"""

from pathlib import Path

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
