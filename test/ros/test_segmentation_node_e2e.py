"""The segmentation node end to end: a real node subprocess (perception mode: depth + segmentation in one
process), real rclpy messages from this process, reduced real networks with random weights.
"""

import json

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import String

from support.depth_node_harness import (
    DISCOVERY_TIMEOUT_S,
    TEST_PARAMETERS,
    Collector,
    NodeProcess,
    RosPeer,
    camera_info,
    diagnostic_values,
    header,
    pattern_image,
    publish_until,
    raw_image,
    same_stamp,
    stamp,
)

pytestmark = pytest.mark.ros

NAMESPACE = "/perception"
WIDTH, HEIGHT = 64, 48
SEMANTIC_TOPICS = {"semantic/labels": Image, "semantic/colored": Image, "semantic/overlay": Image}
DEPTH_TOPICS = {"depth": Image, "points": PointCloud2}
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


PERCEPTION_PARAMETERS = {
    **TEST_PARAMETERS,
    "model": "dpt_hybrid_nyu",  # metric depth -> a point cloud
    "segmentation_model": "dpt_large_ade20k",
    "publish_semantic_colored": True,
    "publish_semantic_overlay": True,
    "overlay_alpha": 0.5,
    "cloud_rgb": False,
    "max_range": 10000.0,
}


class SegmentationNodeUnderTest:
    """One segmentation_node process in its own namespace, with the peer's publishers and collectors."""

    def __init__(self, peer: RosPeer, workdir, namespace: str, parameters: dict, topics: dict) -> None:
        self.namespace = namespace
        self.process = NodeProcess(parameters, workdir, namespace, module="dpt_ros.ros.segmentation_node")
        self.image_pub = peer.publisher(Image, f"{namespace}/image")
        self.info_pub = peer.publisher(CameraInfo, f"{namespace}/camera_info")
        self.outputs = {topic: peer.collect(msg_type, f"{namespace}/{topic}") for topic, msg_type in topics.items()}

    def exchange(self, seconds: int) -> tuple[np.ndarray, dict]:
        """Send one frame (until every output answered with its stamp); returns (rgb, answers)."""
        at = header(stamp(seconds, 987_654_321), "perception_camera_optical")
        rgb = pattern_image(WIDTH, HEIGHT)
        image, info = raw_image(at, rgb, "rgb8"), camera_info(at, WIDTH, HEIGHT)

        def send() -> None:
            self.info_pub.publish(info)
            self.image_pub.publish(image)

        answered = lambda: all(c.find(same_stamp(at.stamp)) for c in self.outputs.values())  # noqa: E731
        assert publish_until(send, answered), "no answer on " + str(
            [t for t, c in self.outputs.items() if not c.find(same_stamp(at.stamp))]
        ) + "\n" + self.process.output()
        return rgb, {topic: c.find(same_stamp(at.stamp)) for topic, c in self.outputs.items()}


@pytest.fixture(scope="module")
def peer():
    ros = RosPeer()
    yield ros
    ros.close()


@pytest.fixture(scope="module")
def node(peer, tmp_path_factory):
    perception = SegmentationNodeUnderTest(
        peer, tmp_path_factory.mktemp("perception"), NAMESPACE, PERCEPTION_PARAMETERS,
        {**SEMANTIC_TOPICS, **DEPTH_TOPICS},
    )
    yield perception
    assert perception.process.stop() == 0, perception.process.output()


def pixels(msg: Image, channels: int = 1) -> np.ndarray:
    shape = (msg.height, msg.width) + ((channels,) if channels > 1 else ())
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(shape)


def cloud_fields(cloud: PointCloud2) -> np.ndarray:
    formats = {2: "u1", 7: "<f4"}
    dtype = np.dtype({
        "names": [f.name for f in cloud.fields],
        "formats": [formats[f.datatype] for f in cloud.fields],
        "offsets": [f.offset for f in cloud.fields],
        "itemsize": cloud.point_step,
    })
    return np.frombuffer(bytes(cloud.data), dtype).reshape(cloud.height, cloud.width)


def test_labels_palette_overlay_and_labelled_cloud_arrive_with_the_image_header(node, peer):
    rgb, answers = node.exchange(2000)
    for topic, msg in answers.items():
        assert msg.header.frame_id == "perception_camera_optical", topic
    labels_msg, colored_msg, overlay_msg = (answers[t] for t in SEMANTIC_TOPICS)
    assert (labels_msg.encoding, labels_msg.width, labels_msg.height) == ("mono8", WIDTH, HEIGHT)
    assert colored_msg.encoding == overlay_msg.encoding == "bgr8"
    labels = pixels(labels_msg)
    assert labels.max() < 150
    # palette and overlay are exactly the class table's colours for these ids
    table = json.loads(collect_classes(peer).data)
    palette_bgr = np.array([c["color_rgb"][::-1] for c in table["classes"]], np.uint8)
    np.testing.assert_array_equal(pixels(colored_msg, 3), palette_bgr[labels])
    expected_overlay = np.rint(0.5 * rgb[..., ::-1].astype(np.float32) + 0.5 * palette_bgr[labels].astype(np.float32))
    np.testing.assert_array_equal(pixels(overlay_msg, 3), expected_overlay.astype(np.uint8))
    # the cloud's label field carries the same ids, point for point (organized, stride 1, scale 1)
    points = cloud_fields(answers["points"])
    assert next(f for f in answers["points"].fields if f.name == "label").datatype == 2  # UINT8
    np.testing.assert_array_equal(points["label"], labels)
    assert np.isfinite(points["z"]).all()


def collect_classes(peer: RosPeer) -> String:
    """A subscriber created now (after the node published its table once) still gets the table."""
    late = Collector()
    peer.node.create_subscription(String, f"{NAMESPACE}/semantic/classes", late, LATCHED)
    message = late.wait_for(lambda msg: True, DISCOVERY_TIMEOUT_S)
    assert message is not None, "the latched class table did not reach a late subscriber"
    return message


def test_a_late_subscriber_receives_the_class_table(node, peer):
    node.exchange(2100)  # the node has been up and publishing for a while
    table = json.loads(collect_classes(peer).data)
    assert table["unlabeled_id"] == 255 and len(table["classes"]) == 150
    assert table["classes"][2]["name"] == "sky" and table["classes"][2]["color_rgb"] == [6, 230, 230]


def test_ignore_classes_set_at_runtime_drop_those_points(node, peer):
    _, answers = node.exchange(2200)
    labels = pixels(answers["semantic/labels"])
    ids, counts = np.unique(labels, return_counts=True)
    dropped = int(ids[np.argmax(counts)])  # the most frequent class of this (random-weight) network
    dropped_name = json.loads(collect_classes(peer).data)["classes"][dropped]["name"]

    client = peer.node.create_client(SetParameters, f"{NAMESPACE}/segmentation_node/set_parameters")
    assert client.wait_for_service(timeout_sec=DISCOVERY_TIMEOUT_S)
    request = SetParameters.Request(parameters=[Parameter("ignore_classes", value=dropped_name).to_parameter_msg()])
    result = client.call(request, timeout_sec=DISCOVERY_TIMEOUT_S)
    assert result is not None and result.results[0].successful, result
    bad = SetParameters.Request(parameters=[Parameter("ignore_classes", value="no such class").to_parameter_msg()])
    refused = client.call(bad, timeout_sec=DISCOVERY_TIMEOUT_S).results[0]
    assert not refused.successful and "no such class" in refused.reason

    _, answers = node.exchange(2300)
    labels = pixels(answers["semantic/labels"])  # same image, same network: same labels
    points = cloud_fields(answers["points"])
    np.testing.assert_array_equal(np.isnan(points["z"]), labels == dropped)
    np.testing.assert_array_equal(points["label"], labels)


@pytest.mark.slow
def test_segmentation_alone_needs_no_depth_model_and_no_camera_info(peer, tmp_path_factory):
    topics = {"semantic/labels": Image, "semantic/colored": Image}
    diagnostics = peer.collect(DiagnosticArray, "/diagnostics")
    alone = SegmentationNodeUnderTest(
        peer, tmp_path_factory.mktemp("alone"), "/alone", {**TEST_PARAMETERS, "input_size": [64, 64]}, topics
    )
    try:
        _, answers = alone.exchange(3000)
        labels, colored = answers["semantic/labels"], answers["semantic/colored"]
        assert (labels.encoding, labels.width, labels.height) == ("mono8", WIDTH, HEIGHT)
        assert colored.header == labels.header
        assert peer.node.count_publishers("/alone/depth") == 0
        status = diagnostics.wait_for(
            lambda msg: any(s.name == "dpt_ros: /alone/segmentation_node" for s in msg.status)
            and int(diagnostic_values(msg)["frames_processed"]) >= 1,
            DISCOVERY_TIMEOUT_S,
        )
        assert status is not None, alone.process.output()
        values = diagnostic_values(status)
        assert values["segmentation_preset"] == "dpt_hybrid_ade20k" and values["segmentation_random_weights"] == "true"
        assert values["class_table"] == "150 classes (ADE20K SceneParsing (150 classes))"
        assert "model_preset" not in values  # no depth network
    finally:
        assert alone.process.stop() == 0, alone.process.output()


def test_missing_segmentation_weights_stop_the_node_with_where_to_get_them(tmp_path):
    parameters = {"device": "cpu", "segmentation_model": "dpt_hybrid_ade20k", "segmentation_weights": "/no/such.pt"}
    node = NodeProcess(parameters, tmp_path, "/missing", module="dpt_ros.ros.segmentation_node")
    assert node.process.wait(timeout=DISCOVERY_TIMEOUT_S) == 1, node.output()
    fatal = [line for line in node.output().splitlines() if "FATAL" in line]
    assert len(fatal) == 1 and "dpt_hybrid-ade20k-53898607.pt" in fatal[0] and "/no/such.pt" in fatal[0], node.output()
    assert "`dpt-ros-weights download dpt_hybrid_ade20k`" in fatal[0], node.output()
