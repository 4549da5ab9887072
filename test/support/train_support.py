"""Shared pieces of the dpt_train loop tests: a tiny synthetic KITTI and a tiny real DPT-Hybrid config."""

from pathlib import Path

import pytest
import torch

from dpt_train.config import TrainConfig, load_config
from dpt_train.synthetic_kitti import SyntheticKittiSpec, write_synthetic_kitti

SPEC = SyntheticKittiSpec(height=80, width=160, drives=4, frames_per_drive=12, lidar_rows=24,
                          lidar_points_per_row=80)
# DPT-Hybrid (ResNet stem + ViT) with 2 blocks of width 64: the real architecture, ~0.6 M parameters.
TINY_HYBRID = ("{embed_dim: 64, depth: 2, num_heads: 2, taps: [0, 1], reassemble_channels: [128, 128, 64, 64], "
               "resnet_layers: [1, 1, 1], resnet_stem_channels: 32, resnet_channels: [128, 128, 128], features: 32}")


def make_dataset(root: Path) -> dict[str, Path]:
    return write_synthetic_kitti(root, SPEC)


def overrides(paths: dict[str, Path], run_dir: Path, **settings) -> list[str]:
    """Command-line overrides of a tiny random-init metric run; settings override or extend them."""
    values = {
        "run_dir": run_dir, "data.image_root": paths["image_root"], "data.depth_root": paths["depth_root"],
        "data.train_split": paths["train"], "data.val_split": paths["val"], "data.num_workers": 0,
        "data.augment.kb_height": 64, "data.augment.kb_width": 128,
        "data.augment.crop_height": 64, "data.augment.crop_width": 96,
        "model.architecture": TINY_HYBRID, "model.weights": "null",
        # metres = 1 / (0.05 x + 0.0125): a random head (x ~ 1) starts near 16 m, never beyond 80 m
        "model.metric_scale": 0.05, "model.metric_shift": 0.0125,
        "recipe.estimate_scale_shift": "false", "batch_size": 4, "amp": "none", "log_every": 1,
        "optim.warmup_steps": 5, "optim.decoder_lr": 1e-3, "optim.backbone_lr": 1e-3, "image_panels": 2,
        "max_steps": 8, "val_every": 1000, "checkpoint_every": 1000,
    }
    values.update(settings)
    return [f"{key}={value}" for key, value in values.items()]


def config(paths: dict[str, Path], run_dir: Path, **settings) -> TrainConfig:
    return load_config(None, overrides(paths, run_dir, **settings))


@pytest.fixture(autouse=True, scope="module")
def single_torch_thread():
    """One intra-op thread: on a shared 2-core machine, two spinning OpenMP threads per process slow these
    small models down by an order of magnitude as soon as anything else runs. Restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
