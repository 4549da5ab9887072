"""The node's input_size must be a multiple of the chosen preset's stride: 32 for DPT, 14 for Depth Anything V2."""

import pytest

from dpt_ros.app.node_config import DepthNodeConfig, depth_preset_names


def test_every_dav2_preset_is_a_node_model():
    names = set(depth_preset_names())
    for size in ("vits", "vitb", "vitl"):
        assert {f"depth_anything_v2_{size}", f"depth_anything_v2_metric_hypersim_{size}",
                f"depth_anything_v2_metric_vkitti_{size}"} <= names


def test_input_size_multiple_follows_the_preset():
    assert DepthNodeConfig(model="depth_anything_v2_vits", input_size=(518, 364)).input_size == (518, 364)
    with pytest.raises(ValueError, match="multiples of 14 for depth_anything_v2_vits"):
        DepthNodeConfig(model="depth_anything_v2_vits", input_size=(512, 384))
    with pytest.raises(ValueError, match="multiples of 32 for dpt_hybrid_midas"):
        DepthNodeConfig(model="dpt_hybrid_midas", input_size=(518, 364))
