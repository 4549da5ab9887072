"""The depth node with Depth Anything V2 presets (`model:=depth_anything_v2_*`): a reduced random DA-V2
(tiny width and depth, the real network), relative through inverse-depth alignment topics, metric in
metres, and the licence notice of non-commercial weights logged once at start."""

import itertools
import json

import numpy as np
import pytest

from support.depth_node_harness import (
    TEST_PARAMETERS,
    DepthNodeUnderTest,
    RosPeer,
    camera_info,
    header,
    pattern_image,
    raw_image,
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
