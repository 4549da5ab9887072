"""Reading bags the node's way: TF chains, topic choice, image/scan pairing and message decoding."""

import cv2
import numpy as np
import pytest

from dpt_ros.app.node_config import DepthNodeConfig
from dpt_ros.bags.frames import PairedFrame, SkippedFrame, decode_frame, paired_frames, select_topics
from dpt_ros.bags.rosbag_io import (
    CAMERA_INFO,
    IMAGE,
    POINT_CLOUD,
    TF_MESSAGE,
    TYPESTORE,
    BagError,
    BagWriter,
    TopicInfo,
    make_camera_info,
    make_header,
    make_image,
    make_point_cloud,
    make_tf_message,
    open_bag,
)
from dpt_ros.bags.transforms import TransformLookupError, TransformTree
from dpt_ros.geometry.transforms import invert_transform, make_transform, rotation_rpy

SECOND = 1_000_000_000
T_BASE_CAMERA = make_transform(rotation_rpy(-np.pi / 2, 0.0, -np.pi / 2), (1.0, 0.2, 1.5))
T_BASE_LIDAR = make_transform(rotation_rpy(0.0, 0.05, 0.1), (0.5, 0.0, 2.0))


def _tree() -> TransformTree:
    tree = TransformTree()
    tree.add_message(make_tf_message([("base_link", "camera", T_BASE_CAMERA), ("base_link", "lidar", T_BASE_LIDAR)],
                                     0), is_static=True)
    for stamp, x in ((0, 0.0), (SECOND, 5.0)):
        tree.add_message(make_tf_message([("odom", "base_link", make_transform(np.eye(3), (x, 0.0, 0.0)))], stamp),
                         is_static=False)
    return tree


def test_transform_chains_compose_in_either_direction():
    tree = _tree()
    expected = invert_transform(T_BASE_CAMERA) @ T_BASE_LIDAR  # lidar -> base_link -> camera
    np.testing.assert_allclose(tree.lookup("camera", "lidar", 0), expected, atol=1e-12)
    np.testing.assert_allclose(tree.lookup("lidar", "camera", 0), invert_transform(expected), atol=1e-12)
    np.testing.assert_allclose(tree.lookup("/camera", "camera", 0), np.eye(4))
    # dynamic edges: the sample nearest the asked time, within the tolerance
    assert tree.lookup("odom", "lidar", SECOND - 10_000_000)[0, 3] == pytest.approx(5.0 + 0.5)
    assert tree.lookup("odom", "lidar", 20_000_000)[0, 3] == pytest.approx(0.5)
    with pytest.raises(TransformLookupError, match="no transform from 'lidar' to 'odom'.*base_link, camera, lidar"):
        tree.lookup("odom", "lidar", 3 * SECOND)
    with pytest.raises(TransformLookupError, match="'map'"):
        tree.lookup("map", "lidar", 0)


def _topics(*entries: tuple[str, str]) -> list[TopicInfo]:
    return [TopicInfo(name, msgtype, 3) for name, msgtype in entries]


def test_topics_are_picked_by_type_and_namespace_or_named():
    topics = _topics(("/front/image_raw", IMAGE), ("/front/camera_info", CAMERA_INFO),
                     ("/rear/image_raw", IMAGE), ("/rear/camera_info", CAMERA_INFO), ("/velodyne", POINT_CLOUD))
    with pytest.raises(BagError, match="(?s)several image topics .*--image-topic.*/rear/camera_info"):
        select_topics(topics)
    chosen = select_topics(topics, image="/rear/image_raw")
    assert (chosen.image, chosen.camera_info, chosen.lidar) == ("/rear/image_raw", "/rear/camera_info", "/velodyne")
    with pytest.raises(BagError, match="/nope is not in the bag"):
        select_topics(topics, image="/nope")
    with pytest.raises(BagError, match="/velodyne is sensor_msgs/msg/PointCloud2, not"):
        select_topics(topics, image="/velodyne")
    with pytest.raises(BagError, match="no LiDAR messages"):
        select_topics(_topics(("/image", IMAGE), ("/camera_info", CAMERA_INFO)))


def _write_bag(path, events) -> None:
    """events: (receive ns, topic, message) in any order."""
    types = {"/image": IMAGE, "/camera_info": CAMERA_INFO, "/points": POINT_CLOUD, "/tf_static": TF_MESSAGE}
    with BagWriter(path, "mcap") as bag:
        for topic, msgtype in types.items():
            bag.add_topic(topic, msgtype)
        for stamp, topic, message in sorted(events, key=lambda event: event[0]):
            bag.write(topic, stamp, message)


def test_images_pair_with_the_nearest_scan_or_say_why_not(tmp_path):
    rgb = np.zeros((4, 6, 3), np.uint8)
    cloud = {name: np.zeros(3, np.float32) for name in "xyz"}
    K = np.array([[5.0, 0, 2.5], [0, 5.0, 1.5], [0, 0, 1]])
    events = [
        (0, "/image", make_image(rgb, "rgb8", 0, "camera")),  # before any camera_info: the next one serves
        (30_000_000, "/camera_info", make_camera_info(K, 6, 4, 30_000_000, "camera")),
        (40_000_000, "/points", make_point_cloud(cloud, 40_000_000, "lidar")),
        (90_000_000, "/points", make_point_cloud(cloud, 90_000_000, "lidar")),  # 90 ms later: not the nearest
        (SECOND, "/image", make_image(rgb, "rgb8", SECOND, "camera")),  # no scan within 0.1 s
        (SECOND + 500, "/points", make_point_cloud(cloud, SECOND + 200_000_000, "lidar")),
    ]
    _write_bag(tmp_path / "bag", events)
    reader = open_bag(tmp_path / "bag")
    frames = list(paired_frames(reader, select_topics([TopicInfo(n, t, 1) for n, t in (
        ("/image", IMAGE), ("/camera_info", CAMERA_INFO), ("/points", POINT_CLOUD))]), max_lidar_dt=0.1))
    reader.close()
    assert isinstance(frames[0], PairedFrame) and frames[0].lidar_offset_ns == 40_000_000
    assert frames[0].camera_info.width == 6
    assert isinstance(frames[1], SkippedFrame) and "no LiDAR scan within max_lidar_dt (0.1 s)" in frames[1].reason


def test_compressed_images_and_ros1_style_camera_info_decode_the_nodes_way():
    rgb = np.random.default_rng(0).integers(0, 255, (4, 6, 3), dtype=np.uint8)
    _, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    compressed = TYPESTORE.types["sensor_msgs/msg/CompressedImage"](
        header=make_header(0, "camera"), format="png", data=np.frombuffer(png.tobytes(), np.uint8))
    info = make_camera_info(np.array([[5.0, 0, 2.5], [0, 5.0, 1.5], [0, 0, 1]]), 6, 4, 0, "camera")
    cloud = make_point_cloud({"x": np.array([10.0], np.float32), "y": np.zeros(1, np.float32),
                              "z": np.zeros(1, np.float32), "ring": np.array([7], np.uint16)}, 0, "lidar")
    config = DepthNodeConfig(lidar_alignment=True, lidar_to_camera=(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    inputs = decode_frame(PairedFrame(0, 0, compressed, info, cloud, 0), TransformTree(), config)
    np.testing.assert_array_equal(inputs.rgb, rgb)
    assert inputs.extrinsic_source == "parameter" and inputs.ring.tolist() == [7]
    assert inputs.lens.D is not None and not inputs.lens.D.any()  # D given (zeros) is passed on, as in the node
    np.testing.assert_array_equal(inputs.xyz, [[10.0, 0.0, 0.0]])
