"""Architecture descriptions of the DPT-family networks, as plain data.

A `DPTArchitecture` (DPT, Ranftl et al. 2021) or `DepthAnythingV2Architecture` (Yang et al. 2024: a
DINOv2 ViT with a DPT head) says everything needed to instantiate the network and nothing about weights
or preprocessing, which belong to a `Preset`. The released variants are values of these classes, not
code paths: see `presets.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BackboneKind = Literal["vit", "vit_hybrid"]
Readout = Literal["ignore", "add", "project"]
HeadKind = Literal["depth", "segmentation"]
# How the hybrid's ResNet standardises its conv weights (see `backbone.StdConv2dSameOfficial`):
#   "official":     (w - mean) / (std + 1e-5)      -- timm 0.4.5, what the released DPT weights were trained with
#   "transformers": (w - mean) / sqrt(var + 1e-8)  -- current timm and Hugging Face transformers
WeightStandardization = Literal["official", "transformers"]


@dataclass(frozen=True)
class PositionEmbeddingResize:
    """How position embeddings trained on a g x g patch grid are resized to an h x w grid.

    offset None: `interpolate(size=(h, w))`, as the official DPT code.
    offset o:    `interpolate(scale_factor=((h + o) / g, (w + o) / g))`, as DINOv2 and the original Depth
        Anything V2 code; the scale factor itself (not h / g) then sets the sampling positions, so the
        embeddings differ from the size-based rule at every non-square grid.
    """

    mode: Literal["bilinear", "bicubic"] = "bilinear"
    offset: float | None = None
    antialias: bool = False

    def __post_init__(self) -> None:
        if self.offset is not None and (self.mode != "bicubic" or self.antialias):
            raise ValueError("the offset (scale-factor) position-embedding rule is bicubic without antialias")


@dataclass(frozen=True)
class DPTArchitecture:
    """Hyper-parameters of a DPT network.

    taps: 0-based ViT block indices whose outputs feed the decoder. Four for a plain ViT; two for the
        hybrid, whose first two decoder inputs are the outputs of ResNet stages 0 and 1.
    reassemble_channels: channels of the four reassembled feature maps (before the 3x3 `layerN_rn`
        convs that bring them all to `features`, the paper's D-hat).
    pretrain_grid: side of the square patch grid the position embeddings were trained at
        (384 / 16 = 24); they are interpolated on the fly to any other grid.
    """

    backbone: BackboneKind = "vit"
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    pretrain_grid: int = 24
    taps: tuple[int, ...] = (2, 5, 8, 11)
    reassemble_channels: tuple[int, int, int, int] = (96, 192, 384, 768)
    features: int = 256
    readout: Readout = "project"
    head: HeadKind = "depth"
    num_classes: int = 150
    resnet_layers: tuple[int, int, int] = (3, 4, 9)
    resnet_stem_channels: int = 64
    resnet_channels: tuple[int, int, int] = (256, 512, 1024)
    weight_standardization: WeightStandardization = "official"
    layer_norm_eps: float = 1e-6
    pos_embed_resize: PositionEmbeddingResize = PositionEmbeddingResize()

    def __post_init__(self) -> None:
        expected_taps = 2 if self.backbone == "vit_hybrid" else 4
        problems = []
        if self.backbone not in ("vit", "vit_hybrid"):
            problems.append(f"backbone must be 'vit' or 'vit_hybrid', got {self.backbone!r}")
        if len(self.taps) != expected_taps:
            problems.append(f"a {self.backbone} backbone needs {expected_taps} taps, got {self.taps}")
        if any(not 0 <= t < self.depth for t in self.taps) or list(self.taps) != sorted(set(self.taps)):
            problems.append(f"taps {self.taps} must be increasing block indices in [0, {self.depth})")
        if len(self.reassemble_channels) != 4:
            problems.append(f"reassemble_channels needs 4 values, got {self.reassemble_channels}")
        if self.embed_dim % self.num_heads:
            problems.append(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.readout not in ("ignore", "add", "project"):
            problems.append(f"readout must be ignore/add/project, got {self.readout!r}")
        if self.head not in ("depth", "segmentation"):
            problems.append(f"head must be 'depth' or 'segmentation', got {self.head!r}")
        if self.weight_standardization not in ("official", "transformers"):
            problems.append(f"weight_standardization must be official/transformers, got {self.weight_standardization!r}")
        if self.backbone == "vit_hybrid" and tuple(self.reassemble_channels[:2]) != tuple(self.resnet_channels[:2]):
            problems.append(
                "a hybrid's first two reassemble_channels are its ResNet stage widths "
                f"{self.resnet_channels[:2]}, got {self.reassemble_channels[:2]}"
            )
        if problems:
            raise ValueError("invalid DPT architecture: " + "; ".join(problems))

    @property
    def use_batch_norm(self) -> bool:
        """The segmentation variant uses BatchNorm in its fusion residual units; depth does not."""
        return self.head == "segmentation"

    @property
    def stride(self) -> int:
        """Input sides must be multiples of this (the deepest reassembled map is at 1/32)."""
        return 2 * self.patch_size


@dataclass(frozen=True)
class DepthAnythingV2Architecture:
    """Hyper-parameters of a Depth Anything V2 network: DINOv2 ViT encoder + DPT head.

    taps: 0-based ViT blocks whose tokens, after the final LayerNorm and without the class token, feed
        the head (the original's `get_intermediate_layers(..., norm=True)`, `use_clstoken=False`).
    reassemble_channels: widths of the head's four 1x1 projections (`depth_head.projects`), which are then
        resampled x4, x2, x1, x0.5 (`depth_head.resize_layers`).
    features: width of the fusion blocks (64 / 128 / 256 for ViT-S / B / L).
    pretrain_grid: the position embeddings' grid (518 / 14 = 37).
    max_depth: None for the relative head (ReLU, affine-invariant inverse depth); metres for the metric
        head (Sigmoid x max_depth).
    """

    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    patch_size: int = 14
    pretrain_grid: int = 37
    taps: tuple[int, ...] = (2, 5, 8, 11)
    reassemble_channels: tuple[int, int, int, int] = (48, 96, 192, 384)
    features: int = 64
    head_hidden: int = 32
    max_depth: float | None = None
    layer_norm_eps: float = 1e-6
    pos_embed_resize: PositionEmbeddingResize = PositionEmbeddingResize(mode="bicubic", offset=0.1)

    def __post_init__(self) -> None:
        problems = []
        if len(self.taps) != 4 or any(not 0 <= t < self.depth for t in self.taps) or list(self.taps) != sorted(
            set(self.taps)
        ):
            problems.append(f"taps {self.taps} must be 4 increasing block indices in [0, {self.depth})")
        if len(self.reassemble_channels) != 4:
            problems.append(f"reassemble_channels needs 4 values, got {self.reassemble_channels}")
        if self.embed_dim % self.num_heads:
            problems.append(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.max_depth is not None and not self.max_depth > 0:
            problems.append(f"max_depth must be positive metres or None (relative), got {self.max_depth}")
        if problems:
            raise ValueError("invalid Depth Anything V2 architecture: " + "; ".join(problems))

    @property
    def head(self) -> HeadKind:
        return "depth"

    @property
    def stride(self) -> int:
        """Input sides must be multiples of the patch size; the head's fusion blocks resize to explicit sizes."""
        return self.patch_size


Architecture = DPTArchitecture | DepthAnythingV2Architecture
