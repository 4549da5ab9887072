"""Segmentation node configuration (one parameter table with the depth node's) and start-up wiring."""

import json

import numpy as np
import pytest

from dpt_ros.app.depth_setup import build_depth_pipeline
from dpt_ros.app.node_config import DepthNodeConfig, parameter_specs
from dpt_ros.app.segmentation_config import SegmentationNodeConfig
from dpt_ros.app.segmentation_setup import build_segmentation

SMALL_NETWORK = {
    "allow_random_weights": True,
    "architecture_overrides": json.dumps(
        {"backbone": "vit", "embed_dim": 64, "depth": 4, "num_heads": 2, "taps": [0, 1, 2, 3],
         "reassemble_channels": [16, 32, 64, 64], "features": 32}
    ),
    "device": "cpu",
}


def test_parameter_table_extends_the_depth_node_s():
    specs = {spec.name: spec for spec in parameter_specs(SegmentationNodeConfig)}
    assert {spec.name for spec in parameter_specs(DepthNodeConfig)} < set(specs)
    assert specs["model"].default == ""  # segmentation only unless a depth preset is given
    assert specs["segmentation_model"].choices == ("dpt_hybrid_ade20k", "dpt_large_ade20k")
    assert specs["overlay_alpha"].read_only is False and specs["segmentation_model"].read_only is True
    assert SegmentationNodeConfig.from_mapping({name: spec.default for name, spec in specs.items()}) == (
        SegmentationNodeConfig()
    )


def test_ignore_classes_become_dropped_cloud_labels():
    config = SegmentationNodeConfig(model="dpt_hybrid_nyu", ignore_classes="sky, Ceiling,,")
    assert config.ignored_label_ids() == (2, 5)
    assert config.output_options().cloud_dropped_labels == (2, 5)
    assert SegmentationNodeConfig().output_options().cloud_dropped_labels == ()


def test_invalid_settings_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="'skyy': did you mean 'sky'"):
        SegmentationNodeConfig(ignore_classes="skyy")
    with pytest.raises(ValueError, match="lidar_alignment"):
        SegmentationNodeConfig(lidar_alignment=True)
    with pytest.raises(ValueError, match="not a depth preset"):
        SegmentationNodeConfig(model="dpt_large_ade20k")
    with pytest.raises(ValueError, match="segmentation_model"):
        SegmentationNodeConfig(segmentation_model="dpt_hybrid_midas")
    with pytest.raises(ValueError, match="overlay_alpha"):
        SegmentationNodeConfig().with_changes({"overlay_alpha": 1.5})
    with pytest.raises(ValueError, match="class_table"):
        SegmentationNodeConfig(class_table="/nonexistent/classes.yaml")


def test_segmentation_alone_builds_one_network():
    setup = build_segmentation(SegmentationNodeConfig.from_mapping(SMALL_NETWORK))
    assert setup.depth_pipeline is None and setup.shared_input is None
    assert setup.engine.preset.name == "dpt_hybrid_ade20k" and setup.engine.random_weights
    labels = setup.segmentation.process(np.zeros((40, 56, 3), np.uint8)).labels
    assert labels.shape == (40, 56) and labels.dtype == np.uint8


def test_perception_shares_one_input_size_between_depth_and_segmentation():
    config = SegmentationNodeConfig.from_mapping({**SMALL_NETWORK, "model": "dpt_hybrid_nyu"})
    setup = build_segmentation(config, build_depth_pipeline(config))
    assert setup.depth_engine.preset.name == "dpt_hybrid_nyu"
    # the segmentation network follows the depth preset's 640 x 480 target, not its own 480 x 480
    assert setup.engine.network_size(480, 640) == setup.depth_engine.network_size(480, 640) == (480, 640)
    assert setup.shared_input is not None


def test_cameras_are_refused_one_segmentation_node_per_camera():
    with pytest.raises(ValueError, match="cameras works with the depth node only"):
        SegmentationNodeConfig(cameras=("front", "left"))
