"""Depth Anything V2: parameter counts, identity with `transformers`' DepthAnythingForDepthEstimation on
shared seeded weights, lossless key round trip, the position-embedding rule, preprocessing and the engine.

The `transformers` reference is a reduced architecture (tiny width and depth) with seeded random weights,
saved as a Hugging Face checkpoint directory and loaded through our HF-layout loader. `transformers`'
DINOv2 resizes position embeddings with `size=(h, w)`, the original code with
`scale_factor=((h + 0.1) / g, (w + 0.1) / g)`: at the pretraining grid neither resizes, so the square
comparison runs the presets' own rule; the non-square comparison switches our side to the size rule
(`PositionEmbeddingResize(offset=None)`), and the offset rule is checked on its own against an
independent cubic-convolution implementation.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

from dpt_ros import InferenceEngine, build_model, preprocess
from dpt_ros.model.architecture import PositionEmbeddingResize
from dpt_ros.model.backbone import resize_position_embedding
from dpt_ros.model.checkpoint import hf_to_official, official_to_hf
from dpt_ros.model.dpt import build_network
from dpt_ros.model.preprocess import network_input_size
from dpt_ros.model.presets import ARCHITECTURES, PRESETS, get_preset

# A reduced real architecture: 4 blocks of width 32, pretraining grid 4 x 4 (56 px).
TINY = dict(
    embed_dim=32, depth=4, num_heads=2, taps=(0, 1, 2, 3), reassemble_channels=(8, 16, 32, 32), features=16,
    pretrain_grid=4,
)
# float32 through ~10 layers; transformers computes attention with a different summation order.
TOLERANCE = 1e-4


def tiny_preset(name: str = "depth_anything_v2_vits", **overrides):
    return get_preset(name).with_architecture(**TINY, **overrides)


@pytest.mark.parametrize(
    "name, millions",
    [("depth_anything_v2_vits", 24.8), ("depth_anything_v2_vitb", 97.5), ("depth_anything_v2_vitl", 335.3)],
)
def test_parameter_counts_match_the_original(name, millions):
    with torch.device("meta"):
        model = build_network(PRESETS[name])
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == millions


def test_presets_are_named_and_sized_as_released():
    for size, arch in (("vits", "depth_anything_v2_vits"), ("vitb", "depth_anything_v2_vitb"), ("vitl", "depth_anything_v2_vitl")):
        for prefix, max_depth in (("", None), ("metric_hypersim_", 20.0), ("metric_vkitti_", 80.0)):
            preset = PRESETS[f"depth_anything_v2_{prefix}{size}"]
            assert preset.architecture == dataclasses.replace(ARCHITECTURES[arch], max_depth=max_depth)
            assert preset.weights_file == f"depth_anything_v2_{prefix}{size}.pth"
            assert preset.url.startswith("https://huggingface.co/depth-anything/Depth-Anything-V2-")
            assert preset.is_metric == (max_depth is not None)
            assert preset.licence == ("Apache-2.0" if size == "vits" else "CC-BY-NC-4.0")
            assert preset.non_commercial == (size != "vits")
            assert preset.architecture.stride == 14 and preset.input_size == (518, 518)


# ----------------------------------------------------------------------------------- transformers


def _hf_config(preset_name: str) -> DepthAnythingConfig:
    arch = tiny_preset(preset_name).architecture
    backbone = Dinov2Config(
        hidden_size=arch.embed_dim, num_hidden_layers=arch.depth, num_attention_heads=arch.num_heads,
        mlp_ratio=int(arch.mlp_ratio), image_size=arch.pretrain_grid * arch.patch_size, patch_size=arch.patch_size,
        layerscale_value=1.0, out_indices=[t + 1 for t in arch.taps], apply_layernorm=True,
        reshape_hidden_states=False,
    )
    return DepthAnythingConfig(
        backbone_config=backbone, patch_size=arch.patch_size, reassemble_hidden_size=arch.embed_dim,
        neck_hidden_sizes=list(arch.reassemble_channels), fusion_hidden_size=arch.features,
        head_hidden_size=arch.head_hidden,
        depth_estimation_type="relative" if arch.max_depth is None else "metric",
        max_depth=1 if arch.max_depth is None else int(arch.max_depth),  # the config field is typed int
    )


def _randomise(model: torch.nn.Module, seed: int) -> None:
    """Seeded weights everywhere: fan-in-scaled matrices, LayerNorm / LayerScale gains around 1, small biases."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            noise = torch.randn(tensor.shape, generator=generator)
            if "norm" in name and name.endswith("weight") or name.endswith("lambda1"):
                tensor.copy_(1.0 + 0.2 * noise)
            elif tensor.ndim > 1 and "embeddings" not in name or "patch_embeddings" in name:
                tensor.copy_(noise / tensor[0].numel() ** 0.5)
            else:  # biases, class token, position embeddings
                tensor.copy_(0.1 * noise)
        # Centre the last conv so the final ReLU / Sigmoid is neither dead nor saturated.
        model.head.conv3.bias.fill_(0.2)


@pytest.fixture(scope="module", params=["depth_anything_v2_vits", "depth_anything_v2_metric_vkitti_vits"])
def shared_weights(request, tmp_path_factory):
    torch.manual_seed(0)
    reference = DepthAnythingForDepthEstimation(_hf_config(request.param)).eval()
    _randomise(reference, seed=1)
    checkpoint_dir = tmp_path_factory.mktemp("hf")
    reference.save_pretrained(checkpoint_dir)
    return request.param, reference, checkpoint_dir


def _relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize(
    "size, pos_embed_rule",
    [
        ((56, 56), None),  # the pretraining grid: no resize on either side, the presets' own rule
        ((70, 98), PositionEmbeddingResize(mode="bicubic", offset=None)),  # transformers' size rule on both sides
    ],
    ids=["56x56-preset-rule", "70x98-size-rule"],
)
def test_matches_transformers(shared_weights, size, pos_embed_rule):
    preset_name, reference, checkpoint_dir = shared_weights
    overrides = {} if pos_embed_rule is None else {"pos_embed_resize": pos_embed_rule}
    ours = build_model(tiny_preset(preset_name, **overrides), weights=checkpoint_dir)
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = reference(pixel_values=x).predicted_depth
        out = ours(x)
    assert out.shape == ref.shape == (2, *size)
    assert float(ref.std()) > 1e-2 * float(ref.abs().max())  # an informative map, not a constant
    assert _relative_error(out, ref) <= TOLERANCE
    if preset_name.startswith("depth_anything_v2_metric"):
        assert 0 < float(out.min()) and float(out.max()) < 80.0


def test_official_hf_round_trip_is_lossless(shared_weights):
    preset_name, _, checkpoint_dir = shared_weights
    official = build_model(tiny_preset(preset_name), weights=checkpoint_dir).state_dict()
    assert all(k.startswith(("pretrained.", "depth_head.")) for k in official)
    hf = official_to_hf(official)
    # The checkpoint file's layout (transformers 5 renames q/k/v in memory but saves the Hub layout).
    assert set(hf) == set(load_file(checkpoint_dir / "model.safetensors"))
    back = hf_to_official(hf)
    assert set(back) == set(official)
    for key, value in official.items():
        assert torch.equal(back[key], value), key


def test_released_key_layout_loads_as_is(tmp_path):
    """An original-layout file (pretrained.* DINOv2 names, depth_head.*) loads strictly and bit-exactly."""
    preset = tiny_preset("depth_anything_v2_metric_hypersim_vits")
    source = build_network(preset)
    keys = set(source.state_dict())
    for expected in ("pretrained.mask_token", "pretrained.blocks.0.ls1.gamma", "pretrained.blocks.3.attn.qkv.weight",
                     "depth_head.projects.0.weight", "depth_head.resize_layers.3.weight",
                     "depth_head.scratch.refinenet4.resConfUnit2.conv1.weight",
                     "depth_head.scratch.output_conv1.weight", "depth_head.scratch.output_conv2.2.bias"):
        assert expected in keys
    torch.save(source.state_dict(), tmp_path / "depth_anything_v2_metric_hypersim_vits.pth")
    loaded = build_model(preset, weights=tmp_path / "depth_anything_v2_metric_hypersim_vits.pth")
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


# ----------------------------------------------------------------------------------- position embeddings


def _cubic_weights(t: float, a: float = -0.75) -> np.ndarray:
    """Keys' cubic convolution weights (a = -0.75, PyTorch's bicubic) for the 4 taps around a fraction t."""
    def kernel(x: float) -> float:
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a if x < 2 else 0.0
    return np.array([kernel(t + 1), kernel(t), kernel(1 - t), kernel(2 - t)])


def _resize_axis(values: np.ndarray, out_len: int, scale: float) -> np.ndarray:
    """Resample axis 0 with source coordinate (i + 0.5) / scale - 0.5, edge-clamped taps (align_corners=False)."""
    n = values.shape[0]
    out = []
    for i in range(out_len):
        src = (i + 0.5) / scale - 0.5
        base = int(np.floor(src))
        taps = [min(max(base + k, 0), n - 1) for k in (-1, 0, 1, 2)]
        out.append(np.tensordot(_cubic_weights(src - base), values[taps], axes=1))
    return np.stack(out)


def test_position_embedding_offset_rule_is_the_originals():
    grid, dim, (h, w) = 4, 3, (5, 7)
    pos_embed = torch.randn(1, 1 + grid * grid, dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    rule = PositionEmbeddingResize(mode="bicubic", offset=0.1)
    resized = resize_position_embedding(pos_embed.float(), (h, w), rule)
    assert resized.shape == (1, 1 + h * w, dim)
    assert torch.equal(resized[:, 0], pos_embed[:, 0].float())  # the class position is not resampled
    table = pos_embed[0, 1:].reshape(grid, grid, dim).numpy()
    expected = _resize_axis(table, h, (h + 0.1) / grid)
    expected = _resize_axis(expected.transpose(1, 0, 2), w, (w + 0.1) / grid).transpose(1, 0, 2)
    assert np.abs(resized[0, 1:].reshape(h, w, dim).numpy() - expected).max() < 1e-5
    # The size rule samples elsewhere: the two differ at a non-pretraining grid, agree at the pretraining one.
    size_rule = resize_position_embedding(pos_embed.float(), (h, w), PositionEmbeddingResize(mode="bicubic"))
    assert float((size_rule - resized).abs().max()) > 1e-2
    # The original skips the resize at the pretraining grid; ours must give the embeddings back bit-exactly.
    assert torch.equal(resize_position_embedding(pos_embed.float(), (grid, grid), rule), pos_embed.float())


# ----------------------------------------------------------------------------------- preprocessing, engine


def _reference_input(image_rgb: np.ndarray, target: int = 518, multiple: int = 14) -> np.ndarray:
    """The documented rule, written out: RGB / 255 (float64); scale by the larger of target / side so both
    sides reach the target; each side np.round-ed to a multiple of 14 (ceil where that falls below the
    target); OpenCV bicubic; ImageNet mean / std; CHW float32."""
    height, width = image_rgb.shape[:2]
    scale = max(target / height, target / width)
    sides = []
    for side in (height, width):
        snapped = int(np.round(scale * side / multiple) * multiple)
        sides.append(snapped if snapped >= target else int(np.ceil(scale * side / multiple) * multiple))
    resized = cv2.resize(image_rgb / 255.0, (sides[1], sides[0]), interpolation=cv2.INTER_CUBIC)
    normalised = (resized - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    return normalised.transpose(2, 0, 1).astype(np.float32)


def test_preprocessing_of_a_kitti_frame_matches_the_documented_rule():
    image = np.random.default_rng(0).integers(0, 256, size=(375, 1242, 3), dtype=np.uint8)
    batch = preprocess(image, "depth_anything_v2_vits")
    assert batch.shape == (1, 3, 518, 1722) and batch.dtype == torch.float32
    assert np.array_equal(batch[0].numpy(), _reference_input(image))


@pytest.mark.parametrize(
    "hw, target, expected",
    [
        ((375, 1242), (518, 518), (518, 1722)),  # 1242 * 518 / 375 = 1715.6 -> 123 * 14
        ((480, 640), (518, 518), (518, 686)),    # 640 * 518 / 480 = 690.7 -> round(49.33) * 14
        ((518, 518), (518, 518), (518, 518)),
        ((100, 100), (520, 520), (532, 532)),    # 520 / 14 = 37.1 rounds to 518 < 520: rounded up instead
    ],
)
def test_lower_bound_rule(hw, target, expected):
    assert network_input_size(*hw, target, multiple=14, method="lower_bound") == expected


def test_engine_resizes_back_bilinear_with_aligned_corners():
    preset = tiny_preset()
    engine = InferenceEngine(preset, allow_random_weights=True)
    with torch.no_grad():
        engine.model.depth_output_conv().bias.fill_(1.0)
    image = np.random.default_rng(1).integers(0, 256, size=(30, 45, 3), dtype=np.uint8)
    with torch.no_grad():
        raw = engine.model(preprocess(image, preset))
    expected = F.interpolate(raw[:, None], size=(30, 45), mode="bilinear", align_corners=True)[0, 0].numpy()
    assert np.abs(engine.infer(image) - expected).max() <= 1e-6 * np.abs(expected).max()


def test_input_must_be_a_multiple_of_14():
    model = build_model(tiny_preset())
    with pytest.raises(ValueError, match="multiples of 14"):
        model(torch.randn(1, 3, 56, 60))


def test_fusion_residual_hook_sees_every_block_and_is_added_before_upsampling():
    model = build_model(tiny_preset())
    x = torch.randn(1, 3, 70, 98, generator=torch.Generator().manual_seed(5))
    calls = []

    def record(level, size_hw):
        calls.append((level, size_hw))
        return None

    with torch.no_grad():
        plain = model(x)
        assert torch.equal(model(x, fusion_residual=record), plain)
        # Patch grid 5 x 7: maps at x4 (20 x 28), x2, x1 and the stride-2 conv's 3 x 4.
        assert calls == [(4, (3, 4)), (3, (5, 7)), (2, (10, 14)), (1, (20, 28))]
        zeros = model(x, fusion_residual=lambda level, hw: torch.zeros(1, TINY["features"], *hw))
        shifted = model(x, fusion_residual=lambda level, hw: torch.ones(1, TINY["features"], *hw) * (level == 2))
    assert torch.equal(zeros, plain)
    assert not torch.allclose(shifted, plain)
