"""DPT core: architecture sizes, preprocessing rule, weight standardisation, checkpoint loading, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dpt_ros import InferenceEngine, build_model, preprocess
from dpt_ros.model.architecture import DPTArchitecture
from dpt_ros.model.backbone import StdConv2dSameOfficial
from dpt_ros.model.checkpoint import WeightsError
from dpt_ros.model.dpt import DPT
from dpt_ros.model.preprocess import network_input_size
from dpt_ros.model.presets import ARCHITECTURES, PRESETS, get_preset

SMALL = dict(embed_dim=64, depth=4, num_heads=2, taps=(0, 1, 2, 3), reassemble_channels=(16, 32, 64, 64), features=32)


def _count(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


@pytest.mark.parametrize(
    "name, paper_millions, timm_head_millions",
    # Paper Table 9 counts include timm's unused 1000-class head (embed_dim * 1000 + 1000), which the
    # official checkpoints carry but our network does not instantiate.
    [("dpt_base", 112, 0.769), ("dpt_hybrid", 123, 0.769), ("dpt_large", 343, 0.0)],
)
def test_parameter_counts_match_paper(name, paper_millions, timm_head_millions):
    with torch.device("meta"):
        model = DPT(ARCHITECTURES[name])
    count = _count(model)
    assert abs(count + timm_head_millions - paper_millions) / paper_millions < 0.02
    official = {"dpt_base": 111.6, "dpt_hybrid": 123.1, "dpt_large": 343.0}[name]
    assert abs(count + timm_head_millions - official) < 0.1


@pytest.mark.parametrize(
    "hw, target, expected",
    [
        ((480, 640), (384, 384), (384, 512)),     # scaled by 0.8 (closer to 1 than 0.6)
        ((375, 1242), (1216, 352), (352, 1216)),  # KITTI raw frame -> the KITTI preset size
        ((480, 640), (640, 480), (480, 640)),     # NYU
        ((720, 1280), (480, 480), (480, 864)),    # ADE20K preset on a 16:9 image
        ((10, 12), (384, 384), (320, 384)),       # width ratio 32 is closer to 1 than 38.4: 10 * 32 = 320
        ((375, 500), (384, 384), (384, 512)),     # 500 * 1.024 = 512 exactly
        ((100, 150), (384, 384), (256, 384)),     # width ratio 2.56 is closer to 1 than 3.84
        ((3, 3), (1, 1), (32, 32)),               # never below one multiple of 32
    ],
)
def test_minimal_resize_rule(hw, target, expected):
    assert network_input_size(*hw, target) == expected


def test_preprocess_matches_reference_recipe():
    import cv2

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(100, 150, 3), dtype=np.uint8)
    batch = preprocess(image, "dpt_hybrid_midas")
    assert batch.shape == (1, 3, 256, 384) and batch.dtype == torch.float32
    expected = cv2.resize(image / 255.0, (384, 256), interpolation=cv2.INTER_CUBIC)  # float64 as the reference
    expected = ((expected - 0.5) / 0.5).transpose(2, 0, 1)
    assert np.abs(batch[0].numpy() - expected).max() < 1e-5


@pytest.mark.parametrize(
    "image, error, fragment",
    [
        (np.zeros((0, 0, 3), np.uint8), ValueError, "empty"),
        (np.zeros((32, 32), np.uint8), ValueError, "mono image"),
        (np.zeros((32, 32, 1), np.uint8), ValueError, "(H, W, 3)"),
        (np.zeros((32, 32, 3), np.float32), TypeError, "uint8"),
        ([[0, 0, 0]], TypeError, "numpy array"),
    ],
)
def test_bad_images_raise_clear_errors(image, error, fragment):
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        preprocess(image, "dpt_hybrid_midas")


def test_official_weight_standardisation_formula():
    torch.manual_seed(0)
    conv = StdConv2dSameOfficial(4, 6, kernel_size=3, stride=2, eps=1e-5)
    x = torch.randn(1, 4, 16, 16)
    w = conv.weight
    flat = w.reshape(6, -1)
    standardised = ((flat - flat.mean(1, keepdim=True)) / (flat.std(1, unbiased=False, keepdim=True) + 1e-5)).reshape_as(w)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1))  # TF "SAME" for k=3, s=2 on an even input
    expected = torch.nn.functional.conv2d(padded, standardised, stride=2)
    assert torch.allclose(conv(x), expected, atol=1e-5)


def test_official_and_transformers_standardisation_differ_measurably():
    """The two formulas are a real option, not a no-op: DPT-Hybrid's output moves by ~1e-3 relative."""
    torch.manual_seed(0)
    small_hybrid = dict(SMALL, taps=(0, 1), reassemble_channels=(256, 512, 64, 64))
    official = build_model(get_preset("dpt_hybrid_midas").with_architecture(**small_hybrid))
    transformers_style = build_model(
        get_preset("dpt_hybrid_midas").with_architecture(**small_hybrid, weight_standardization="transformers")
    )
    transformers_style.load_state_dict(official.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():  # the encoder's maps: random decoder weights may zero the head's output
        for a, b in zip(official.pretrained(x), transformers_style.pretrained(x)):
            relative = float((a - b).abs().max() / a.abs().max())
            assert 1e-6 < relative < 1e-1


def test_official_checkpoint_with_timm_head_loads(tmp_path):
    """Official files carry `pretrained.model.head.*` (timm's classifier): ignored on load."""
    preset = get_preset("dpt_hybrid_midas").with_architecture(**SMALL, backbone="vit")
    source = build_model(preset)
    state = dict(source.state_dict())
    state["pretrained.model.head.weight"] = torch.zeros(1000, 64)
    state["pretrained.model.head.bias"] = torch.zeros(1000)
    path = tmp_path / "official.pt"
    torch.save(state, path)
    loaded = build_model(preset, weights=path)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(source(x), loaded(x))


def test_metric_preset_converts_inverse_depth_to_metres():
    preset = get_preset("dpt_hybrid_kitti").with_architecture(**SMALL, backbone="vit")
    model = build_model(preset)
    relative = DPT(preset.architecture)
    relative.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        inverse, metres = relative.eval()(x), model(x)
    expected = 1.0 / (6.016e-5 * inverse + 0.00579).clamp_min(1e-8)
    assert torch.allclose(metres, expected)
    assert float(metres.max()) <= 1 / 0.00579 + 1e-3  # zero inverse depth -> the far cap, never inf


def test_wrong_shape_checkpoint_names_preset_file_and_keys(tmp_path):
    small = build_model(get_preset("dpt_hybrid_midas").with_architecture(**SMALL, backbone="vit"))
    path = tmp_path / "small.pt"
    torch.save(small.state_dict(), path)
    with pytest.raises(WeightsError) as info:
        build_model("dpt_large_midas", weights=path)
    message = str(info.value)
    assert "dpt_large_midas" in message and str(path) in message
    assert "wrong shapes" in message and "missing keys" in message


def test_non_checkpoint_file_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("this is not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        build_model("dpt_hybrid_midas", weights=path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        build_model("dpt_hybrid_midas", weights=tmp_path / "absent.pt")


def test_engine_refuses_to_run_without_weights_unless_allowed(tmp_path):
    with pytest.raises(WeightsError, match="dpt_hybrid-midas-501f0c75.pt") as info:
        InferenceEngine("dpt_hybrid_midas", weights=tmp_path / "absent.pt")
    assert "`dpt-ros-weights download dpt_hybrid_midas`" in str(info.value)


def test_engine_output_is_model_output_resized_bicubic():
    preset = get_preset("dpt_hybrid_midas").with_architecture(**SMALL, backbone="vit")
    engine = InferenceEngine(preset, allow_random_weights=True)
    assert engine.random_weights
    image = np.random.default_rng(1).integers(0, 256, size=(50, 70, 3), dtype=np.uint8)
    out = engine.infer(image)
    assert out.shape == (50, 70) and out.dtype == np.float32
    with torch.no_grad():
        raw = engine.model(preprocess(image, preset))[:, None]
    expected = torch.nn.functional.interpolate(raw, size=(50, 70), mode="bicubic", align_corners=False)[0, 0]
    assert np.allclose(out, expected.numpy(), atol=1e-6)


def test_segmentation_engine_returns_logits_at_image_size():
    preset = get_preset("dpt_hybrid_ade20k").with_architecture(**SMALL, backbone="vit")
    engine = InferenceEngine(preset, allow_random_weights=True)
    out = engine.infer(np.zeros((40, 60, 3), np.uint8))
    assert out.shape == (150, 40, 60)


def test_every_preset_is_consistent():
    for name, preset in PRESETS.items():
        assert preset.name == name
        if preset.needs_prompt:  # Prompt Depth Anything: every repository's file is model.ckpt, saved renamed
            assert preset.weights_file == f"{name}.ckpt" and preset.url.endswith("/model.ckpt")
        elif not preset.sha256_prefix:  # Depth Anything V2: the official names carry no hash
            assert preset.weights_file == f"{name}.pth" and preset.url.endswith("/" + preset.weights_file)
        else:
            assert preset.weights_file.endswith(f"{preset.sha256_prefix}.pt")
        metres_from = preset.metric or getattr(preset.architecture, "max_depth", None)
        assert (metres_from is not None) == preset.is_metric
        assert (preset.architecture.head == "segmentation") == preset.is_segmentation


def test_invalid_architecture_is_rejected():
    with pytest.raises(ValueError, match="taps"):
        DPTArchitecture(taps=(1, 2, 3))
    with pytest.raises(ValueError, match="divisible"):
        DPTArchitecture(embed_dim=100, num_heads=12)


@pytest.mark.parametrize("size", [(32, 32), (64, 96), (96, 160)])
def test_any_multiple_of_32_any_aspect(size):
    model = build_model(get_preset("dpt_hybrid_midas").with_architecture(**SMALL, backbone="vit"))
    with torch.no_grad():
        assert model(torch.randn(2, 3, *size)).shape == (2, *size)


def test_non_multiple_of_32_is_rejected():
    model = build_model(get_preset("dpt_hybrid_midas").with_architecture(**SMALL, backbone="vit"))
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 48, 64))
