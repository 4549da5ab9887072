"""Message conversions: fields, layouts and headers, with real sensor_msgs types (no ROS context needed)."""

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from dpt_ros.errors import InputError
from dpt_ros.geometry.camera import PinholeIntrinsics
from dpt_ros.geometry.pointcloud import build_point_cloud
from dpt_ros.ros import conversions

HEADER = Header(stamp=Time(sec=12, nanosec=345), frame_id="camera_optical")


def test_raw_and_compressed_images_decode() -> None:
    bgr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    msg = Image(header=HEADER, height=5, width=7, encoding="bgr8", step=21, data=bgr.tobytes())
    np.testing.assert_array_equal(conversions.rgb_from_image(msg), bgr[..., ::-1])
    png = cv2.imencode(".png", bgr)[1].tobytes()
    decoded = conversions.rgb_from_compressed(CompressedImage(format="png", data=png))
    np.testing.assert_array_equal(decoded, bgr[..., ::-1])
    with pytest.raises(InputError):
        conversions.rgb_from_image(Image(height=5, width=7, encoding="bgr8", step=21, data=bytes(20)))


def test_depth_and_colour_images_keep_the_header_and_layout() -> None:
    depth = np.array([[1.5, np.nan, 3.0]], np.float32)
    msg = conversions.image_msg(HEADER, depth.astype("<f4"))
    assert (msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian) == ("32FC1", 1, 3, 12, 0)
    assert msg.header.stamp == HEADER.stamp and msg.header.frame_id == "camera_optical"
    np.testing.assert_array_equal(np.frombuffer(msg.data, "<f4"), depth.ravel())
    mm = conversions.image_msg(HEADER, np.array([[1, 2]], "<u2"))
    assert (mm.encoding, mm.step, bytes(mm.data)) == ("16UC1", 4, b"\x01\x00\x02\x00")
    colour = conversions.image_msg(HEADER, np.zeros((2, 3, 3), np.uint8))
    assert (colour.encoding, colour.step, len(colour.data)) == ("bgr8", 9, 18)


def test_point_cloud_message_layout() -> None:
    cloud = build_point_cloud(
        np.ones((2, 3), np.float32), PinholeIntrinsics(1, 1, 1, 1, 3, 2), rgb=np.zeros((2, 3, 3), np.uint8)
    )
    msg = conversions.point_cloud_msg(HEADER, cloud)
    assert (msg.height, msg.width, msg.point_step, msg.row_step, msg.is_dense) == (2, 3, 16, 48, False)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1)
    ]
    assert len(msg.data) == 96 and msg.header.frame_id == "camera_optical"


def test_camera_info_intrinsics_and_rescaled_copy() -> None:
    info = CameraInfo(width=640, height=480, k=[500.0, 0, 319.5, 0, 500, 239.5, 0, 0, 1],
                      p=[500.0, 0, 319.5, 0, 0, 500, 239.5, 0, 0, 0, 1, 0], distortion_model="plumb_bob",
                      d=[0.1, 0, 0, 0, 0])
    assert conversions.intrinsics_from_camera_info(info, "K") == PinholeIntrinsics(500, 500, 319.5, 239.5, 640, 480)
    half = conversions.camera_info_at(info, HEADER, 320, 240)
    assert (half.width, half.height, half.header.stamp) == (320, 240, HEADER.stamp)
    np.testing.assert_allclose(half.k, [250, 0, 159.5, 0, 250, 119.5, 0, 0, 1])
    assert half.distortion_model == "plumb_bob" and list(half.d) == [0.1, 0, 0, 0, 0]
    with pytest.raises(InputError):
        conversions.intrinsics_from_camera_info(CameraInfo(width=640, height=480), "K")


def test_diagnostic_array() -> None:
    statuses = [
        conversions.diagnostic_status(f"dpt_ros: depth {camera}", "cpu", DiagnosticStatus.WARN, "random", {"a": camera})
        for camera in ("front", "left")
    ]
    array_msg = conversions.diagnostic_array(HEADER.stamp, statuses)
    assert array_msg.header.stamp == HEADER.stamp and len(array_msg.status) == 2
    status = array_msg.status[1]
    assert (status.level, status.name, status.hardware_id) == (DiagnosticStatus.WARN, "dpt_ros: depth left", "cpu")
    assert [(kv.key, kv.value) for kv in status.values] == [("a", "left")]
