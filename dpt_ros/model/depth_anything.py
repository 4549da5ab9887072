"""Depth Anything V2 (Yang et al., NeurIPS 2024): a DINOv2 ViT encoder with a DPT head.

Built as the original repository (DepthAnything/Depth-Anything-V2) builds it, with its state-dict key
names (`pretrained.*`, `depth_head.*`), so the released `.pth` files load as they are.

Stable names for code that builds on this network (e.g. Prompt Depth Anything): `DepthAnythingV2`
(`.pretrained` the `DINOv2Encoder`, `.depth_head` the `DepthAnythingV2Head`), its `forward(x,
fusion_residual=None)`, and `FusionResidual`. Prompt fusion adds a per-fusion-block residual computed
from the depth prompt: pass a `fusion_residual` callable, see `DepthAnythingV2Head`.
"""

from __future__ import annotations

import torch
from torch import nn

from dpt_ros.model.architecture import DepthAnythingV2Architecture
from dpt_ros.model.backbone import DINOv2Encoder
from dpt_ros.model.decoder import DepthAnythingV2Head, FusionResidual

__all__ = ["DepthAnythingV2", "FusionResidual"]


class DepthAnythingV2(nn.Module):
    """forward(x: (N, 3, H, W) float, ImageNet-normalised, H and W multiples of 14) -> (N, H, W):
    non-negative affine-invariant inverse depth (relative head) or metres in (0, max_depth) (metric head).
    """

    def __init__(self, arch: DepthAnythingV2Architecture) -> None:
        super().__init__()
        self.arch = arch
        self.pretrained = DINOv2Encoder(arch)
        self.depth_head = DepthAnythingV2Head(
            arch.embed_dim, arch.reassemble_channels, arch.features, arch.head_hidden, arch.patch_size,
            metric=arch.max_depth is not None,
        )

    def forward(self, x: torch.Tensor, fusion_residual: FusionResidual | None = None) -> torch.Tensor:
        tokens, grid_hw = self.pretrained.tap(x)
        depth = self.depth_head(tokens, grid_hw, fusion_residual).squeeze(1)
        return depth if self.arch.max_depth is None else depth * self.arch.max_depth

    def depth_output_conv(self) -> nn.Conv2d:
        """The head's last (1-channel) conv, before the final ReLU / Sigmoid."""
        return self.depth_head.scratch.output_conv2[2]
