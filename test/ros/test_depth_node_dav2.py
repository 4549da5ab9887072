"""The depth node with Depth Anything V2 presets (`model:=depth_anything_v2_*`): a reduced random DA-V2
(tiny width and depth, the real network), relative through inverse-depth alignment topics, metric in
metres, and the licence notice of non-commercial weights logged once at start."""

import itertools
import json

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image

from support.depth_node_harness import (
    TEST_PARAMETERS,
    DepthNodeUnderTest,
    NodeProcess,
    RosPeer,
    camera_info,
    header,
    pattern_image,
    publish_until,
    raw_image,
    same_stamp,
    stamp,
)

pytestmark = pytest.mark.ros

TINY_DAV2 = {"embed_dim": 32, "depth": 4, "num_heads": 2, "taps": [0, 1, 2, 3],
             "reassemble_channels": [8, 16, 32, 32], "features": 16, "pretrain_grid": 4}
PARAMETERS = {**TEST_PARAMETERS, "architecture_overrides": json.dumps(TINY_DAV2), "input_size": [84, 56]}
_stamps = itertools.count(5000)


@pytest.fixture(scope="module")
def peer():
    ros = RosPeer()
    yield ros
    ros.close()


def _exchange(node: DepthNodeUnderTest, topics: tuple[str, ...], width: int = 150, height: int = 100):
    at = header(stamp(next(_stamps)))
    return node.exchange(raw_image(at, pattern_image(width, height), "rgb8"), camera_info(at, width, height), topics)


def test_metric_dav2_publishes_metres_and_points(peer, tmp_path):
    parameters = {**PARAMETERS, "model": "depth_anything_v2_metric_vkitti_vits", "max_range": 100.0}
    node = DepthNodeUnderTest(peer, tmp_path, "/dav2_metric", parameters)
    try:
        answers = _exchange(node, ("depth", "points"))
        depth = answers["depth"]
        assert (depth.encoding, depth.width, depth.height) == ("32FC1", 150, 100)
        metres = np.frombuffer(bytes(depth.data), "<f4")
        assert np.all(np.isfinite(metres)) and 0 < metres.min() and metres.max() < 80.0  # Sigmoid x 80 m
    finally:
        node.process.stop()
    output = node.process.output()
    assert "non-commercial" not in output  # ViT-S weights are Apache-2.0


def test_relative_dav2_publishes_inverse_depth_and_logs_the_licence_once(peer, tmp_path):
    node = DepthNodeUnderTest(peer, tmp_path, "/dav2_relative", {**PARAMETERS, "model": "depth_anything_v2_vitb"})
    try:
        inverse = _exchange(node, ("depth/relative",))["depth/relative"]
        assert (inverse.encoding, inverse.width, inverse.height) == ("32FC1", 150, 100)
        assert not node.outputs["depth"].messages  # relative output is never published as metres
    finally:
        node.process.stop()
    assert node.process.output().count("CC-BY-NC-4.0, non-commercial use only") == 1


def test_perception_node_runs_a_dav2_depth_model_beside_segmentation(peer, tmp_path):
    """perception.launch.py's node (segmentation_node with a depth `model`): metric DA-V2 depth + DPT labels.
    The one architecture_overrides value shrinks both networks (its fields exist in both architectures)."""
    parameters = {**PARAMETERS, "model": "depth_anything_v2_metric_hypersim_vits",
                  "segmentation_model": "dpt_large_ade20k", "max_range": 100.0}
    process = NodeProcess(parameters, tmp_path, "/dav2_perception", module="dpt_ros.ros.segmentation_node")
    try:
        image_pub = peer.publisher(Image, "/dav2_perception/image")
        info_pub = peer.publisher(CameraInfo, "/dav2_perception/camera_info")
        outputs = {topic: peer.collect(Image, f"/dav2_perception/{topic}") for topic in ("depth", "semantic/labels")}
        at = header(stamp(next(_stamps)))
        image, info = raw_image(at, pattern_image(64, 48), "rgb8"), camera_info(at, 64, 48)

        def send() -> None:
            info_pub.publish(info)
            image_pub.publish(image)

        answered = lambda: all(c.find(same_stamp(at.stamp)) for c in outputs.values())  # noqa: E731
        assert publish_until(send, answered), process.output()
        depth = outputs["depth"].find(same_stamp(at.stamp))
        metres = np.frombuffer(bytes(depth.data), "<f4")
        assert (depth.width, depth.height) == (64, 48) and 0 < metres.min() and metres.max() < 20.0
    finally:
        assert process.stop() == 0, process.output()
