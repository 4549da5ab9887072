"""DPT decoder: RefineNet-style fusion blocks and the depth / segmentation heads (DPT and Depth Anything V2).

Module and attribute names follow the official code (`resConfUnit1`, `out_conv`, `output_conv`)
because they are the released checkpoints' state-dict keys.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dpt_ros.model.backbone import make_resample


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
    """Fuse the coarser path with a skip map, refine, upsample, project with a 1x1 conv.

    forward(path (N, F, h, w), skip (N, F, h, w) or None, size, residual) -> (N, F, *size):
      size: output (height, width); None doubles h and w (DPT). Depth Anything V2 passes the next finer
        map's size, which is not always 2h x 2w (a 19-row map feeds a 37-row one). Both are bilinear with
        align_corners=True, so for size == (2h, 2w) the two give identical numbers.
      residual: (N, F, h, w) added after the second residual unit, before upsampling: the hook for
        Prompt Depth Anything's per-block prompt fusion.
    """

    def __init__(self, features: int, use_batch_norm: bool) -> None:
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(features, use_batch_norm)
        self.resConfUnit2 = ResidualConvUnit(features, use_batch_norm)
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)
        self.upsample = Upsample2x()

    def forward(
        self,
        path: torch.Tensor,
        skip: torch.Tensor | None = None,
        size: tuple[int, int] | None = None,
        residual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if skip is not None:
            path = path + self.resConfUnit1(skip)
        path = self.resConfUnit2(path)
        if residual is not None:
            path = path + residual
        if size is None:
            path = self.upsample(path)
        else:
            path = F.interpolate(path, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(path)


FusionResidual = Callable[[int, tuple[int, int]], "torch.Tensor | None"]


class DepthAnythingV2Head(nn.Module):
    """Depth Anything V2's DPT head: four token maps -> (N, 1, 14h, 14w) depth before the metric scaling.

    Module names are the original's (`projects`, `resize_layers`, `scratch.layer{1..4}_rn`,
    `scratch.refinenet{1..4}`, `scratch.output_conv1`, `scratch.output_conv2`), i.e. the released keys
    below `depth_head.`.

    Extending it (Prompt Depth Anything): pass `fusion_residual`, a callable (level, (h, w)) -> tensor or
    None, called once per fusion block (level 4, coarsest, down to 1) with the size of the map entering
    that block; a returned (N, features, h, w) tensor is added after the block's second residual unit,
    before its upsampling (`FeatureFusionBlock`'s `residual`). A prompt-fusion head keeps its own
    per-level prompt layers and returns their output on the prompt resized to (h, w); with no prompt the
    head is exactly Depth Anything V2's.
    """

    def __init__(
        self, embed_dim: int, reassemble_channels: tuple[int, int, int, int], features: int, head_hidden: int,
        patch_size: int, metric: bool,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.projects = nn.ModuleList(nn.Conv2d(embed_dim, c, kernel_size=1) for c in reassemble_channels)
        self.resize_layers = nn.ModuleList(
            make_resample(c, factor) for c, factor in zip(reassemble_channels, (4.0, 2.0, 1.0, 0.5))
        )
        self.scratch = nn.Module()
        for level, channels in enumerate(reassemble_channels, start=1):
            self.scratch.add_module(
                f"layer{level}_rn", nn.Conv2d(channels, features, kernel_size=3, padding=1, bias=False)
            )
        for level in range(1, 5):
            self.scratch.add_module(f"refinenet{level}", FeatureFusionBlock(features, use_batch_norm=False))
        self.scratch.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
        # Relative: non-negative inverse depth (ReLU); metric: a fraction of max depth in (0, 1) (Sigmoid).
        self.scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, head_hidden, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(head_hidden, 1, kernel_size=1),
            nn.Sigmoid() if metric else nn.ReLU(),
        )

    def forward(
        self, tokens: list[torch.Tensor], grid_hw: tuple[int, int], fusion_residual: FusionResidual | None = None
    ) -> torch.Tensor:
        """tokens: four (N, h*w, C) patch-token maps; grid_hw = (h, w). Returns (N, 1, 14h, 14w)."""
        s = self.scratch
        layers = []
        for level, (project, resize, block_tokens) in enumerate(zip(self.projects, self.resize_layers, tokens), 1):
            # reshape, not unflatten: the ONNX exporter keeps reshape's sizes dynamic.
            fmap = block_tokens.transpose(1, 2).reshape(block_tokens.shape[0], block_tokens.shape[-1], *grid_hw)
            layers.append(getattr(s, f"layer{level}_rn")(resize(project(fmap))))
        path: torch.Tensor | None = None
        for level in (4, 3, 2, 1):
            skip = layers[level - 1]
            entering = skip if path is None else path
            # Sizes indexed one by one: a traced (ONNX) graph keeps them dynamic, a sliced torch.Size would not.
            residual = fusion_residual(level, (entering.shape[-2], entering.shape[-1])) if fusion_residual else None
            # Each block resizes to the next finer map; the finest doubles.
            finer = layers[level - 2] if level > 1 else None
            size = (finer.shape[-2], finer.shape[-1]) if finer is not None else None
            block = getattr(s, f"refinenet{level}")
            path = block(skip, size=size, residual=residual) if path is None else block(
                path, skip, size=size, residual=residual
            )
        out = s.output_conv1(path)
        out = F.interpolate(
            out, size=(grid_hw[0] * self.patch_size, grid_hw[1] * self.patch_size), mode="bilinear", align_corners=True
        )
        return s.output_conv2(out)


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
