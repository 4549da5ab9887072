"""Config loading/overrides, learning-rate schedule, parameter groups, head folding, normalisation."""

import math
import pkgutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import dpt_train
from dpt_ros import build_model, get_preset, preprocess
from dpt_train.config import ModelConfig, OptimConfig, TrainConfig, load_config, save_config
from dpt_train.data import normalize_image
from dpt_train.engine import WarmupDecay, parameter_groups
from dpt_train.model import depth_head_last_conv, fold_scale_shift, relative_output, resolve_preset
from support.environment import subprocess_env

TINY = dict(embed_dim=64, depth=2, num_heads=2, taps=(0, 1), reassemble_channels=(128, 128, 64, 64),
            resnet_layers=(1, 1, 1), resnet_stem_channels=32, resnet_channels=(128, 128, 128), features=32)


def test_shipped_config_loads_with_typed_overrides(tmp_path):
    config = load_config("config/train_kitti.yaml", ["optim.backbone_lr=2e-5", "data.augment.gamma=[0.8, 1.2]",
                                                     "model.architecture={depth: 4}", "amp=fp16"])
    assert config.optim.backbone_lr == 2e-5 and config.optim.decoder_lr == 1e-4  # "1e-5" strings parsed too
    assert config.data.augment.gamma == (0.8, 1.2) and config.model.architecture == {"depth": 4}
    assert config.data.augment.crop_height == 352 and config.data.augment.crop_width == 704
    assert config.loss.variance_focus == 0.85 and config.eval.crop == "garg" and config.amp == "fp16"
    save_config(config, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == config


@pytest.mark.parametrize("override, message", [
    ("optim.lr=1e-4", "unknown config key.*optim.lr"),
    ("batch_size=eight", "batch_size: expected int"),
    ("amp=fp8", "amp: 'fp8' is not one of"),
    ("eval.crop=center", "eval.crop: .center. is not one of"),
    ("novalue", "key=value"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_warmup_then_decay_schedule_values():
    poly = WarmupDecay(warmup_steps=4, total_steps=14, decay="poly", min_ratio=0.1)
    assert [poly(step) for step in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert poly(9) == pytest.approx(0.1 + 0.9 * 0.5**0.9)  # halfway through the decay
    assert poly(14) == pytest.approx(0.1) and poly(100) == pytest.approx(0.1)
    cosine = WarmupDecay(warmup_steps=0, total_steps=10, decay="cosine", min_ratio=0.0)
    assert cosine(0) == 1.0 and cosine(5) == pytest.approx(0.5) and cosine(10) == pytest.approx(0.0)
    assert WarmupDecay(2, 10, "none", 0.0)(7) == 1.0


def test_backbone_and_decoder_learning_rates():
    model = build_model(get_preset("dpt_hybrid_kitti").with_architecture(**TINY))
    groups = parameter_groups(model, OptimConfig(backbone_lr=1e-5, decoder_lr=1e-4, weight_decay=0.05))
    by_name = {group["name"]: group for group in groups}
    assert set(by_name) == {"backbone", "backbone_no_decay", "decoder", "decoder_no_decay"}
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].startswith("pretrained.") for p in by_name["backbone"]["params"])
    assert all(names[id(p)].startswith("scratch.") for p in by_name["decoder"]["params"])
    assert by_name["backbone"]["lr"] == 1e-5 and by_name["decoder_no_decay"]["lr"] == 1e-4
    assert by_name["decoder_no_decay"]["weight_decay"] == 0.0 and by_name["decoder"]["weight_decay"] == 0.05
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_resolve_preset_overrides_and_rejects():
    preset = resolve_preset(ModelConfig(architecture=dict(TINY), metric_scale=0.05, metric_shift=0.0125))
    assert preset.architecture.depth == 2 and preset.metric.scale == 0.05 and preset.metric.shift == 0.0125
    with pytest.raises(ValueError, match="together"):
        resolve_preset(ModelConfig(metric_scale=0.05))
    with pytest.raises(ValueError, match="relative"):
        resolve_preset(ModelConfig(preset="dpt_hybrid_midas", metric_scale=1.0, metric_shift=0.1))
    with pytest.raises(ValueError, match="segmentation"):
        resolve_preset(ModelConfig(preset="dpt_hybrid_ade20k"))


def test_folding_scale_and_shift_into_the_head_keeps_the_preset_constants():
    torch.manual_seed(0)
    model = build_model(get_preset("dpt_hybrid_kitti").with_architecture(**TINY))
    with torch.no_grad():
        depth_head_last_conv(model).bias.fill_(0.5)  # keep the ReLU alive on most pixels
    image = torch.randn(1, 3, 64, 96)
    with torch.no_grad(), relative_output(model):
        relative = model(image)
    assert model.metric is not None  # restored after the context
    scale, shift = 0.02, 0.0125  # 1/z = 0.02 x + 0.0125
    fold_scale_shift(model, scale, shift)
    with torch.no_grad():
        folded = model(image)
    positive = relative > 0
    assert positive.float().mean() > 0.5
    expected = 1.0 / (scale * relative + shift)
    torch.testing.assert_close(folded[positive], expected[positive], rtol=1e-4, atol=1e-4)
    assert model.metric == get_preset("dpt_hybrid_kitti").metric  # node loads with the stock constants


def test_training_normalisation_equals_the_node_preprocessing():
    image = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    expected = preprocess(image, "dpt_hybrid_kitti", input_size=(96, 64))[0]
    assert torch.equal(normalize_image(image), expected)


def test_defaults_are_the_paper_recipe():
    config = TrainConfig()
    assert (config.optim.backbone_lr, config.optim.decoder_lr) == (1e-5, 1e-4)
    assert (config.data.augment.kb_height, config.data.augment.kb_width) == (352, 1216)
    assert (config.eval.min_depth, config.eval.max_depth, config.eval.crop) == (1e-3, 80.0, "garg")
    assert config.loss.kind == "silog" and math.isclose(config.loss.variance_focus, 0.85)


@pytest.mark.slow
def test_every_dpt_train_module_imports_with_rclpy_blocked():
    modules = [m.name for m in pkgutil.walk_packages(dpt_train.__path__, prefix="dpt_train.")]
    assert {"dpt_train.cli", "dpt_train.engine", "dpt_train.data", "dpt_train.kitti_raw"} <= set(modules)
    script = (
        "import sys, importlib\n"
        "sys.modules['rclpy'] = None  # any 'import rclpy' now raises ImportError\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "assert not any(k.startswith('rclpy') for k, v in sys.modules.items() if v is not None)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env=subprocess_env())
    assert result.returncode == 0, result.stderr
