"""The network being trained: a dpt_ros preset (optionally reduced), and its metric head constants.

Training uses the model core's own `DPT` (official module names), so `model.state_dict()` is already in
the official key format that `dpt_ros.build_model(preset, weights=...)` and the node load.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from dpt_ros.model.architecture import DepthAnythingV2Architecture
from dpt_ros.model.dpt import DPT, DepthNetwork, build_model
from dpt_ros.model.presets import MetricConversion, Preset, get_preset
from dpt_train.config import ModelConfig, TrainConfig


def resolve_preset(model_config: ModelConfig) -> Preset:
    """The preset a run trains: the named one, with architecture and metric-constant overrides applied.

    `dpt_ros.build_model(resolve_preset(load_config(run / "config.yaml").model), weights=...)` rebuilds
    exactly the trained network from a run folder.
    """
    preset = get_preset(model_config.preset)
    if preset.is_segmentation:
        raise ValueError(f"preset {preset.name!r} is a segmentation model; dpt-train trains depth")
    if model_config.architecture:
        preset = preset.with_architecture(**model_config.architecture)
    if (model_config.metric_scale is None) != (model_config.metric_shift is None):
        raise ValueError("model.metric_scale and model.metric_shift must be given together")
    if model_config.metric_scale is not None:
        if isinstance(preset.architecture, DepthAnythingV2Architecture):
            raise ValueError(f"{preset.name!r} outputs metres itself (Sigmoid x max depth): no metric_scale/shift")
        if not preset.is_metric:
            raise ValueError(f"metric_scale/metric_shift need a metric preset, {preset.name!r} is relative")
        preset = dataclasses.replace(
            preset, metric=MetricConversion(model_config.metric_scale, model_config.metric_shift)
        )
    return preset


def depth_head_last_conv(model: DepthNetwork) -> torch.nn.Conv2d:
    """The 1x1 conv whose ReLU'd (DPT; Depth Anything V2 relative) or Sigmoid'd (DA-V2 metric) output is the
    network's depth output."""
    return model.depth_output_conv()


def build_training_model(config: TrainConfig) -> DepthNetwork:
    """Build the preset's network in train mode, with config.model.weights if given.

    A randomly initialised depth head often starts with its final ReLU dead everywhere (no gradient can
    ever flow); its last bias is therefore set to +1 so training can start.
    """
    preset = resolve_preset(config.model)
    if config.recipe.estimate_scale_shift and isinstance(preset.architecture, DepthAnythingV2Architecture):
        raise ValueError(
            "recipe.estimate_scale_shift folds an inverse-depth alignment into DPT's metric head; "
            f"{preset.name} outputs metres (or relative depth) directly: set recipe.estimate_scale_shift false"
        )
    model = build_model(preset, weights=config.model.weights)
    if config.model.weights is None:
        with torch.no_grad():
            depth_head_last_conv(model).bias.fill_(1.0)
    return model.train()


@contextmanager
def relative_output(model: DPT) -> Iterator[DPT]:
    """Temporarily make a metric model return its raw head output (inverse depth before 1/(s*x + t))."""
    metric = model.metric
    model.metric = None
    try:
        yield model
    finally:
        model.metric = metric


def fold_scale_shift(model: DPT, scale: float, shift: float) -> None:
    """Rewrite the head's last conv so the model's own metric constants (a, b) compute 1/(scale*x + shift).

    With x = ReLU(z) the raw output and k = scale/a, c = (shift - b)/a, the conv becomes (k w, k bias + c):
    a * ReLU(k z + c) + b = scale * z + shift wherever z >= 0 and k z + c >= 0, i.e. everywhere the
    relative network predicts a positive inverse depth, up to depth 1/b (173 m for the KITTI constants).
    That is the paper's recipe (averaged alignment applied to the predictions) baked into the weights,
    so checkpoints stay loadable by the stock metric preset.
    """
    if model.metric is None:
        raise ValueError("fold_scale_shift needs a metric model (preset with metric constants)")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    conv = depth_head_last_conv(model)
    gain = scale / model.metric.scale
    offset = (shift - model.metric.shift) / model.metric.scale
    with torch.no_grad():
        conv.weight.mul_(gain)
        conv.bias.mul_(gain).add_(offset)
