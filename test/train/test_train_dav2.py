"""Fine-tuning a metric Depth Anything V2 with config/train_kitti_dav2.yaml (the original's recipe), on a
reduced random DA-V2 and synthetic KITTI."""

import math

import pytest
import torch

from dpt_ros import build_model
from dpt_ros.model.presets import IMAGENET_MEAN_STD
from dpt_train.config import load_config
from dpt_train.engine import Trainer
from dpt_train.model import resolve_preset
from support.environment import REPO_ROOT
from support.train_support import make_dataset, single_torch_thread  # noqa: F401 (autouse)

CONFIG = REPO_ROOT / "config" / "train_kitti_dav2.yaml"
TINY_DAV2 = ("{embed_dim: 32, depth: 4, num_heads: 2, taps: [0, 1, 2, 3], reassemble_channels: [8, 16, 32, 32], "
             "features: 16, pretrain_grid: 4}")


def _config(paths, run_dir, **settings):
    values = {
        "run_dir": run_dir, "data.image_root": paths["image_root"], "data.depth_root": paths["depth_root"],
        "data.train_split": paths["train"], "data.val_split": paths["val"], "data.num_workers": 0,
        # the synthetic frames are 80 x 160: crops in multiples of 14
        "data.augment.kb_height": 70, "data.augment.kb_width": 154,
        "data.augment.crop_height": 56, "data.augment.crop_width": 84,
        "model.architecture": TINY_DAV2, "model.weights": "null", "batch_size": 4, "amp": "none",
        "log_every": 1, "max_steps": 6, "val_every": 6, "checkpoint_every": 6, "image_panels": 0,
    }
    values.update(settings)
    return load_config(CONFIG, [f"{key}={value}" for key, value in values.items()])


def test_config_is_the_originals_metric_recipe():
    config = load_config(CONFIG, [])
    preset = resolve_preset(config.model)
    assert preset.name == "depth_anything_v2_metric_vkitti_vits" and preset.architecture.max_depth == 80.0
    assert (config.optim.backbone_lr, config.optim.decoder_lr) == (5e-6, 5e-5)
    assert (config.optim.optimizer, config.optim.weight_decay, config.optim.decay) == ("adamw", 0.01, "poly")
    assert (config.loss.kind, config.loss.variance_focus, config.loss.silog_scale) == ("silog", 0.5, 1.0)
    assert (config.loss.max_depth, config.eval.max_depth) == (80.0, 80.0)
    assert math.isinf(config.optim.grad_clip) and not config.recipe.estimate_scale_shift
    augment = config.data.augment
    assert all(side % 14 == 0 for side in (augment.kb_height, augment.kb_width, augment.crop_height, augment.crop_width))


def test_a_reduced_metric_dav2_trains_and_its_weights_load_in_the_node_preset(tmp_path):
    paths = make_dataset(tmp_path / "kitti")
    config = _config(paths, tmp_path / "run")
    trainer = Trainer(config)
    groups = {group["name"]: group for group in trainer.optimizer.param_groups}
    backbone = {id(p) for name, p in trainer.model.named_parameters() if name.startswith("pretrained.")}
    head = {id(p) for name, p in trainer.model.named_parameters() if name.startswith("depth_head.")}
    grouped = {part: {id(p) for g in trainer.optimizer.param_groups if g["name"].startswith(part) for p in g["params"]}
               for part in ("backbone", "decoder")}
    assert grouped == {"backbone": backbone, "decoder": head}, sorted(groups)
    # ImageNet normalisation, as the preset's preprocessing
    assert trainer.train_set.mean_std == trainer.val_set.mean_std == IMAGENET_MEAN_STD
    assert trainer.train_set[0]["image"].shape == (3, 56, 84)
    trainer.start()
    metrics = trainer.fit()
    trainer.close()
    assert metrics is not None and all(math.isfinite(v) for v in metrics.values())
    state = torch.load(next((tmp_path / "run").rglob("best.pt")), weights_only=True)
    assert all(k.startswith(("pretrained.", "depth_head.")) for k in state)
    model = build_model(resolve_preset(config.model))
    model.load_state_dict(state)


def test_dpt_only_options_are_refused_for_dav2(tmp_path):
    paths = make_dataset(tmp_path / "kitti")
    with pytest.raises(ValueError, match="estimate_scale_shift"):
        Trainer(_config(paths, tmp_path / "run", **{"recipe.estimate_scale_shift": "true"}))
    with pytest.raises(ValueError, match="metric_scale"):
        resolve_preset(_config(paths, tmp_path / "run2", **{"model.metric_scale": 0.05,
                                                             "model.metric_shift": 0.01}).model)
