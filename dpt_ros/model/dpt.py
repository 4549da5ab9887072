"""The DPT network (Ranftl, Bochkovskiy, Koltun, ICCV 2021) and `build_model` for every preset's network."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dpt_ros.model.architecture import DepthAnythingV2Architecture, DPTArchitecture
from dpt_ros.model.backbone import DPTEncoder
from dpt_ros.model.decoder import FeatureFusionBlock, make_depth_head, make_segmentation_head
from dpt_ros.model.depth_anything import DepthAnythingV2
from dpt_ros.model.presets import MetricConversion, Preset, get_preset
from dpt_ros.model.prompt_depth_anything import PromptDepthAnything


class DPT(nn.Module):
    """DPT for dense depth or segmentation.

    forward(x: (N, 3, H, W) float, normalised with mean = std = 0.5, H and W multiples of 32) returns
      - depth head: (N, H, W) non-negative inverse depth (relative), or metres when `metric` is set;
      - segmentation head: (N, num_classes, H, W) logits.
    Submodule names are the official ones: `pretrained` (encoder), `scratch` (decoder), `auxlayer`.
    """

    def __init__(self, arch: DPTArchitecture, metric: MetricConversion | None = None) -> None:
        super().__init__()
        self.arch = arch
        self.metric = metric
        features = arch.features
        self.pretrained = DPTEncoder(arch)
        self.scratch = nn.Module()
        for level, channels in enumerate(arch.reassemble_channels, start=1):
            self.scratch.add_module(
                f"layer{level}_rn", nn.Conv2d(channels, features, kernel_size=3, padding=1, bias=False)
            )
        for level in range(1, 5):
            self.scratch.add_module(f"refinenet{level}", FeatureFusionBlock(features, arch.use_batch_norm))
        if arch.head == "segmentation":
            self.scratch.output_conv = make_segmentation_head(features, arch.num_classes)
            self.auxlayer = make_segmentation_head(features, arch.num_classes, upsample=False)
        else:
            self.scratch.output_conv = make_depth_head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer_1, layer_2, layer_3, layer_4 = self.pretrained(x)
        s = self.scratch
        path = s.refinenet4(s.layer4_rn(layer_4))
        path = s.refinenet3(path, s.layer3_rn(layer_3))
        path = s.refinenet2(path, s.layer2_rn(layer_2))
        path = s.refinenet1(path, s.layer1_rn(layer_1))
        out = s.output_conv(path)
        if self.arch.head == "segmentation":
            return out
        inverse_depth = out.squeeze(1)
        if self.metric is None:
            return inverse_depth
        m = self.metric
        return 1.0 / (m.scale * inverse_depth + m.shift).clamp_min(m.floor)

    def depth_output_conv(self) -> nn.Conv2d:
        """The depth head's last (1-channel) conv, before the final ReLU."""
        if self.arch.head != "depth":
            raise TypeError("a segmentation network has no depth output conv")
        return self.scratch.output_conv[4]


DepthNetwork = DPT | DepthAnythingV2  # PromptDepthAnything is a DepthAnythingV2


def build_network(preset: Preset) -> DepthNetwork:
    """The preset's network with random weights (train mode, as any fresh nn.Module)."""
    if preset.needs_prompt:
        return PromptDepthAnything(preset.architecture)
    if isinstance(preset.architecture, DepthAnythingV2Architecture):
        return DepthAnythingV2(preset.architecture)
    return DPT(preset.architecture, metric=preset.metric)


def build_model(preset: str | Preset, weights: str | Path | None = None) -> DepthNetwork:
    """The preset's network in eval mode, with weights from an official `.pt`/`.pth` file or a Hugging Face
    checkpoint directory (or random weights when `weights` is None)."""
    preset = get_preset(preset)
    model = build_network(preset)
    if weights is not None:
        # Imported here because checkpoint.py needs DPT's key layout, not the other way round.
        from dpt_ros.model.checkpoint import load_weights

        load_weights(model, weights, preset_name=preset.name)
    return model.eval()
