"""DPT decoder: RefineNet-style fusion blocks and the depth / segmentation heads.

Module and attribute names follow the official code (`resConfUnit1`, `out_conv`, `output_conv`)
because they are the released checkpoints' state-dict keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Upsample2x(nn.Module):
    """x2 bilinear upsampling with align_corners=True, as everywhere in the official decoder."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class ResidualConvUnit(nn.Module):
    """x + conv(relu(bn(conv(relu(x))))) with BatchNorm only in the segmentation variant."""

    def __init__(self, features: int, use_batch_norm: bool) -> None:
        super().__init__()
        self.use_batch_norm = use_batch_norm
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1, bias=not use_batch_norm)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1, bias=not use_batch_norm)
        if use_batch_norm:
            self.bn1 = nn.BatchNorm2d(features)
            self.bn2 = nn.BatchNorm2d(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Not in-place: an in-place ReLU here would overwrite `x`, which is also the skip connection.
        out = self.conv1(F.relu(x))
        if self.use_batch_norm:
            out = self.bn1(out)
        out = self.conv2(F.relu(out))
        if self.use_batch_norm:
            out = self.bn2(out)
        return out + x


class FeatureFusionBlock(nn.Module):
    """Fuse the coarser path with a skip map, refine, upsample x2, project with a 1x1 conv."""

    def __init__(self, features: int, use_batch_norm: bool) -> None:
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(features, use_batch_norm)
        self.resConfUnit2 = ResidualConvUnit(features, use_batch_norm)
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)
        self.upsample = Upsample2x()

    def forward(self, path: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            path = path + self.resConfUnit1(skip)
        return self.out_conv(self.upsample(self.resConfUnit2(path)))


def make_depth_head(features: int) -> nn.Sequential:
    """conv 3x3 -> x2 -> conv 3x3 -> ReLU -> conv 1x1 -> ReLU: non-negative inverse depth, (N, 1, H, W)."""
    return nn.Sequential(
        nn.Conv2d(features, features // 2, kernel_size=3, padding=1),
        Upsample2x(),
        nn.Conv2d(features // 2, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 1, kernel_size=1),
        nn.ReLU(),
    )


def make_segmentation_head(features: int, num_classes: int, upsample: bool = True) -> nn.Sequential:
    """conv 3x3 -> BN -> ReLU -> dropout -> conv 1x1 to class logits (-> x2 for the main head).

    The auxiliary head (`auxlayer`) is the same without the final upsampling; it is trained on but
    not part of the official forward pass.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(features, features, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(features),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Conv2d(features, num_classes, kernel_size=1),
    ]
    if upsample:
        layers.append(Upsample2x())
    return nn.Sequential(*layers)
