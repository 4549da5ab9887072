"""Real Luminar PointCloud2 scans (a ROS 1 bag; point_step 32 with a padding gap after z, uint32 time
fields and a uint8 laser id): the cloud parser gives exactly the xyz a numpy structured dtype written from
the layout reads out of the same bytes, for the message as the bag reader gives it (dpt-ros-eval) and as
rclpy gives it to the node (array.array data, PointField messages)."""

import numpy as np
import pytest

from dpt_ros.bags.frames import cloud_column
from dpt_ros.bags.rosbag_io import iterate_messages, open_bag
from dpt_ros.geometry.cloud_fields import xyz_from_cloud_buffer
from support.realdata import LUMINAR_BAG, real_data

pytestmark = real_data(LUMINAR_BAG)

# The layout the realdata README documents, as an independent reading of the bytes.
LUMINAR_POINT = np.dtype({
    "names": ["x", "y", "z", "intensity", "time_sec", "time_nsec", "laser_id"],
    "formats": ["<f4", "<f4", "<f4", "<f4", "<u4", "<u4", "u1"],
    "offsets": [0, 4, 8, 16, 20, 24, 28],
    "itemsize": 32,
})


@pytest.fixture(scope="module")
def scans():
    reader = open_bag(LUMINAR_BAG)
    try:
        return [message for _, _, message in iterate_messages(reader, ["/luminar_pointcloud"])]
    finally:
        reader.close()


def _structured(cloud) -> np.ndarray:
    return np.frombuffer(np.asarray(cloud.data, dtype=np.uint8).tobytes(), dtype=LUMINAR_POINT)


def test_the_bag_holds_what_the_readme_says(scans):
    assert len(scans) == 5
    for cloud in scans:
        layout = [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields]
        assert layout == [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("intensity", 16, 7, 1),
                          ("time_sec", 20, 6, 1), ("time_nsec", 24, 6, 1), ("laser_id", 28, 4, 1)]
        assert (cloud.height, cloud.point_step, cloud.is_bigendian) == (1, 32, False)
        assert cloud.row_step == cloud.width * 32 and 35_000 <= cloud.width <= 37_000  # measured 35,707-36,457
        points = _structured(cloud)
        ranges = np.linalg.norm(np.stack([points["x"], points["y"], points["z"]], axis=1), axis=1)
        assert 240.0 < ranges.max() < 260.0  # measured 252.4-253.4 m


def test_bag_messages_parse_to_the_structured_reading(scans):
    for cloud in scans:
        xyz = xyz_from_cloud_buffer(np.asarray(cloud.data, dtype=np.uint8), cloud.fields, cloud.point_step,
                                    cloud.row_step, cloud.width, cloud.height, cloud.is_bigendian)
        points = _structured(cloud)
        expected = np.stack([points["x"], points["y"], points["z"]], axis=1)
        assert xyz.dtype == np.float32 and xyz.shape == (cloud.width, 3)
        np.testing.assert_array_equal(xyz.view(np.uint32), expected.view(np.uint32))  # bit for bit
        # a scalar field after the padding gap reads the same way (the ring-like column evaluation uses)
        np.testing.assert_array_equal(cloud_column(cloud, "laser_id"), points["laser_id"])


def test_rclpy_messages_parse_to_the_structured_reading(scans):
    """The node's path: rclpy's PointCloud2 carries data as array.array('B') and PointField messages."""
    msg = pytest.importorskip("sensor_msgs.msg")
    for cloud in scans[:2]:
        fields = [msg.PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in cloud.fields]
        ros_cloud = msg.PointCloud2(height=cloud.height, width=cloud.width, fields=fields, is_bigendian=False,
                                    point_step=cloud.point_step, row_step=cloud.row_step,
                                    data=np.asarray(cloud.data, dtype=np.uint8).tobytes(), is_dense=cloud.is_dense)
        xyz = xyz_from_cloud_buffer(ros_cloud.data, ros_cloud.fields, ros_cloud.point_step, ros_cloud.row_step,
                                    ros_cloud.width, ros_cloud.height, ros_cloud.is_bigendian)
        points = _structured(cloud)
        expected = np.stack([points["x"], points["y"], points["z"]], axis=1)
        np.testing.assert_array_equal(xyz.view(np.uint32), expected.view(np.uint32))
