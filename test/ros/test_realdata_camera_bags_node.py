"""The real camera bags' JPEG frames and CameraInfo (1280x960 and 1280x720, plumb_bob) sent to a real depth
node (compressed transport, reduced random-weight DPT): it answers at the full size with the images' own
headers, and the colours in its point cloud are the JPEG's pixels as OpenCV decodes them."""

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, CompressedImage
from std_msgs.msg import Header

from support.depth_node_harness import TEST_PARAMETERS, DepthNodeUnderTest, RosPeer
from support.realdata import CAMERA_BAGS, camera_bag_frame, real_data

pytestmark = [*real_data(*CAMERA_BAGS), pytest.mark.ros, pytest.mark.slow]  # ~25 s: node start-up on 2 cores
CLOUD_STRIDE = 8  # keeps the cloud of a 1280x960 image at 160x120 points


def _rclpy_messages(bag) -> tuple[CompressedImage, CameraInfo]:
    """The bag's ROS 1 messages as the node receives them (ROS 2 field names)."""
    image, info = camera_bag_frame(bag)
    header = Header(stamp=Time(sec=int(image.header.stamp.sec), nanosec=int(image.header.stamp.nanosec)),
                    frame_id=image.header.frame_id)
    compressed = CompressedImage(header=header, format=image.format,
                                 data=np.asarray(image.data, dtype=np.uint8).tobytes())
    camera_info = CameraInfo(header=header, width=int(info.width), height=int(info.height),
                             distortion_model=info.distortion_model, d=[float(v) for v in info.D],
                             k=[float(v) for v in info.K], r=[float(v) for v in info.R], p=[float(v) for v in info.P])
    return compressed, camera_info


def test_real_jpeg_frames_through_the_depth_node(tmp_path):
    # oldest first: the node drops frames older than the last one it answered
    frames = sorted((_rclpy_messages(bag) for bag in CAMERA_BAGS),
                    key=lambda pair: (pair[0].header.stamp.sec, pair[0].header.stamp.nanosec))
    peer = RosPeer()
    node = None
    try:
        node = DepthNodeUnderTest(peer, tmp_path, "/realcam", {
            **TEST_PARAMETERS, "model": "dpt_hybrid_nyu", "image_transport": "compressed",
            "cloud_stride": CLOUD_STRIDE, "max_range": 1e4})
        for image, info in frames:
            answers = node.exchange(image, info, ("depth", "points"))
            depth, cloud = answers["depth"], answers["points"]
            assert (depth.width, depth.height) == (info.width, info.height)
            assert depth.header.frame_id == image.header.frame_id == "raspicam"
            assert depth.header.stamp == image.header.stamp
            decoded = cv2.imdecode(np.frombuffer(bytes(image.data), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
            sampled = decoded[::CLOUD_STRIDE, ::CLOUD_STRIDE]
            assert (cloud.height, cloud.width) == sampled.shape[:2]
            offsets = {field.name: field.offset for field in cloud.fields}
            points = np.frombuffer(bytes(cloud.data), np.uint8).reshape(cloud.height, cloud.width, cloud.point_step)
            packed = points[..., offsets["rgb"] : offsets["rgb"] + 4].copy().view("<u4")[..., 0]
            colours = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1)
            np.testing.assert_array_equal(colours, sampled)
    finally:
        if node is not None:
            assert node.process.stop() == 0, node.process.output()
        peer.close()
