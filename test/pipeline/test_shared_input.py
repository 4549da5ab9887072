"""One preprocessing per frame for the depth and segmentation networks of a perception node."""

import numpy as np
import pytest
import torch

from dpt_ros.model.engine import InferenceEngine
from dpt_ros.model.presets import get_preset
from dpt_ros.pipeline.segmentation import SegmentationStage
from dpt_ros.pipeline.shared_input import SharedInputBackend, SharedNetworkInput
from dpt_ros.segmentation.classes import load_class_table

SMALL = dict(embed_dim=64, depth=4, num_heads=2, taps=(0, 1, 2, 3), reassemble_channels=(16, 32, 64, 64), features=32)


def small_engine(preset_name, input_size=(96, 64)):
    torch.manual_seed(0)
    preset = get_preset(preset_name).with_architecture(**SMALL)
    return InferenceEngine(preset, allow_random_weights=True, input_size=input_size)


@pytest.fixture(scope="module")
def engines():
    return small_engine("dpt_large_midas"), small_engine("dpt_large_ade20k")


def test_both_networks_run_on_one_preparation_per_frame(engines):
    depth_engine, segmentation_engine = engines
    shared = SharedNetworkInput([depth_engine, segmentation_engine])
    depth_backend = SharedInputBackend(depth_engine, shared)
    stage = SegmentationStage(segmentation_engine, load_class_table())
    rng = np.random.default_rng(0)
    for frame_number in (1, 2):
        rgb = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
        labels = stage.process(rgb, network_input=shared.prepare(rgb)).labels
        depth = depth_backend.infer(rgb)
        assert shared.preparations == frame_number
        # identical to each network preprocessing on its own
        np.testing.assert_array_equal(depth, depth_engine.infer(rgb))
        np.testing.assert_array_equal(labels, stage.process(rgb).labels)
        assert depth.shape == (48, 80) and labels.shape == (48, 80)


def test_networks_that_want_different_inputs_cannot_share(engines):
    depth_engine, _ = engines
    other_size = small_engine("dpt_large_ade20k", input_size=(480, 480))
    with pytest.raises(ValueError, match="same device and input size"):
        SharedNetworkInput([depth_engine, other_size])
