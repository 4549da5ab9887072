"""Back-projection and PointCloud2 packing against hand-computed points."""

import numpy as np
import pytest

from dpt_ros.geometry.camera import PinholeIntrinsics
from dpt_ros.geometry.cloud_fields import xyz_from_cloud_buffer
from dpt_ros.geometry.pointcloud import back_project, build_point_cloud, pack_rgb

NAN = np.nan
# fx=2, fy=4, cx=1, cy=0.5 on a 3 x 2 image
CAMERA = PinholeIntrinsics(fx=2.0, fy=4.0, cx=1.0, cy=0.5, width=3, height=2)
DEPTH = np.array([[2.0, 4.0, NAN], [0.0, 1.0, 8.0]], np.float32)
# x = (u - 1) z / 2, y = (v - 0.5) z / 4
EXPECTED_XYZ = np.array(
    [
        [[-1.0, -0.25, 2.0], [0.0, -0.5, 4.0], [NAN, NAN, NAN]],
        [[NAN, NAN, NAN], [0.0, 0.125, 1.0], [4.0, 1.0, 8.0]],
    ],
    np.float32,
)


def _unpack(cloud) -> np.ndarray:
    """Read a PackedCloud back through its declared field layout, as a ROS consumer would."""
    codes = {7: "<f4", 6: "<u4", 4: "<u2", 2: "u1"}
    dtype = np.dtype(
        {
            "names": [f.name for f in cloud.fields],
            "formats": [codes[f.datatype] for f in cloud.fields],
            "offsets": [f.offset for f in cloud.fields],
            "itemsize": cloud.point_step,
        }
    )
    assert cloud.data.dtype == np.uint8 and cloud.data.size == cloud.row_step * cloud.height
    return np.frombuffer(cloud.data.tobytes(), dtype).reshape(cloud.height, cloud.width)


def test_back_projection_matches_hand_computed_points() -> None:
    np.testing.assert_array_equal(back_project(DEPTH, CAMERA), EXPECTED_XYZ)


def test_max_range_and_infinite_depth_become_nan() -> None:
    depth = DEPTH.copy()
    depth[0, 0] = np.inf
    xyz = back_project(depth, CAMERA, max_range=4.0)
    expected = EXPECTED_XYZ.copy()
    expected[0, 0] = NAN
    expected[1, 2] = NAN  # z = 8 > 4
    np.testing.assert_array_equal(xyz, expected)


def test_stride_samples_every_nth_pixel_with_its_own_coordinates() -> None:
    depth = np.arange(1, 31, dtype=np.float32).reshape(5, 6)
    camera = PinholeIntrinsics(10.0, 10.0, 2.5, 2.0, 6, 5)
    full = back_project(depth, camera)
    strided = back_project(depth, camera, stride=4)
    assert strided.shape == (2, 2, 3)
    np.testing.assert_array_equal(strided, full[::4, ::4])


def test_organized_cloud_layout_and_values() -> None:
    cloud = build_point_cloud(DEPTH, CAMERA)
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (2, 3, 12, 36)
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1)
    ]
    assert cloud.is_dense is False
    points = _unpack(cloud)
    np.testing.assert_array_equal(np.stack([points["x"], points["y"], points["z"]], axis=-1), EXPECTED_XYZ)


def test_rgb_is_packed_as_ros_does() -> None:
    rgb = np.array([[[0x12, 0x34, 0x56], [255, 0, 1]]], np.uint8)
    np.testing.assert_array_equal(pack_rgb(rgb).view(np.uint32), [[0x00123456, 0x00FF0001]])


def test_cloud_with_rgb_and_extra_channel() -> None:
    rgb = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
    labels = np.array([[1, 2, 3], [4, 5, 65535]], np.uint16)
    cloud = build_point_cloud(DEPTH, CAMERA, rgb=rgb, channels={"label": labels}, stride=2)
    assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [
        ("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("rgb", 12, 7), ("label", 16, 4)
    ]
    assert (cloud.height, cloud.width, cloud.point_step) == (1, 2, 18)
    points = _unpack(cloud)
    np.testing.assert_array_equal(points["z"], [[2.0, NAN]])
    np.testing.assert_array_equal(points["rgb"].view(np.uint32), [[0x000102, 0x060708]])
    np.testing.assert_array_equal(points["label"], [[1, 3]])


def test_mismatched_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="intrinsics"):
        back_project(np.ones((3, 3), np.float32), CAMERA)
    with pytest.raises(ValueError, match="stride"):
        back_project(DEPTH, CAMERA, stride=0)
    with pytest.raises(ValueError, match="PointField"):
        build_point_cloud(DEPTH, CAMERA, channels={"label": np.ones((2, 3), np.int64)})


def test_an_independent_pointcloud2_reader_gets_the_same_points() -> None:
    """The LiDAR side's PointCloud2 reader (cloud_fields) must read what this writer packs."""
    rgb = np.zeros((2, 3, 3), np.uint8)
    cloud = build_point_cloud(DEPTH, CAMERA, rgb=rgb, channels={"label": np.ones((2, 3), np.uint16)})
    fields = [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields]
    xyz = xyz_from_cloud_buffer(
        cloud.data, fields, cloud.point_step, cloud.row_step, cloud.width, cloud.height, is_bigendian=False
    )
    np.testing.assert_array_equal(xyz, EXPECTED_XYZ.reshape(-1, 3))
