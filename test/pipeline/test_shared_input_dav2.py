"""A Depth Anything V2 depth network never shares a DPT network's preprocessed input: even at one size
(448 is a multiple of both 14 and 32) the normalisations differ."""

import pytest

from dpt_ros import InferenceEngine
from dpt_ros.model.presets import get_preset
from dpt_ros.pipeline.shared_input import SharedNetworkInput, why_not_shareable

# Reduced widths valid for both architectures.
TINY = dict(embed_dim=32, depth=4, num_heads=2, taps=(0, 1, 2, 3), reassemble_channels=(8, 8, 16, 16), features=16)


def _engine(preset_name: str) -> InferenceEngine:
    preset = get_preset(preset_name).with_architecture(**TINY)
    return InferenceEngine(preset, allow_random_weights=True, input_size=(448, 448))


def test_same_size_different_normalisation_is_not_shareable():
    dav2, dpt = _engine("depth_anything_v2_vits"), _engine("dpt_large_ade20k")
    assert dav2.network_size(448, 448) == dpt.network_size(448, 448) == (448, 448)
    assert "normalisation" in why_not_shareable([dav2, dpt], (448, 448))
    with pytest.raises(ValueError, match="normalisation"):
        SharedNetworkInput([dav2, dpt], (448, 448))
    assert why_not_shareable([dav2, dav2], (448, 448)) is None
