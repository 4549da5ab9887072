"""The encoders: DPT's timm ViT (optionally on a ResNet-50 stem) with its reassemble operations, and
Depth Anything V2's DINOv2 ViT.

Module names follow the official DPT code (`pretrained.model...`, `pretrained.act_postprocessN...`),
so the released state dicts load without renaming. Unlike the official code, intermediate tokens are
collected in `forward` itself rather than by forward hooks writing into a module-level dict, so two
models in one process can never see each other's activations.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import HybridEmbed, StdConv2dSame
from timm.layers.padding import pad_same
from timm.models.resnetv2 import ResNetV2
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from dpt_ros.model.architecture import DepthAnythingV2Architecture, DPTArchitecture, PositionEmbeddingResize


class StdConv2dSameOfficial(StdConv2dSame):
    """Weight-standardised conv exactly as timm 0.4.5 computed it: (w - mean) / (std + eps), biased std.

    The released DPT-Hybrid weights were trained with this formula; today's timm and `transformers`
    use (w - mean) / sqrt(var + eps), which moves DPT-Hybrid's output by ~1e-3 relative.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same_pad:
            x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        var, mean = torch.var_mean(self.weight, dim=(1, 2, 3), keepdim=True, unbiased=False)
        weight = (self.weight - mean) / (torch.sqrt(var) + self.eps)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


_STD_CONV = {
    "official": partial(StdConv2dSameOfficial, eps=1e-5),
    "transformers": partial(StdConv2dSame, eps=1e-8),
}


class ProjectReadout(nn.Module):
    """Concatenate the class token to every patch token, then Linear(2C -> C) + GELU."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Linear(2 * embed_dim, embed_dim), nn.GELU())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, 1:]
        readout = tokens[:, :1].expand_as(patches)
        return self.project(torch.cat((patches, readout), dim=-1))


class AddReadout(nn.Module):
    """Add the class token to every patch token."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, 1:] + tokens[:, :1]


class IgnoreReadout(nn.Module):
    """Drop the class token."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, 1:]


def _make_readout(kind: str, embed_dim: int) -> nn.Module:
    return {"project": lambda: ProjectReadout(embed_dim), "add": AddReadout, "ignore": IgnoreReadout}[kind]()


def make_resample(channels: int, factor: float) -> nn.Module:
    """The reassemble resampling by `factor`: x4 / x2 transposed conv, identity, or 3x3 stride-2 conv (x0.5)."""
    if factor > 1:
        k = int(factor)
        return nn.ConvTranspose2d(channels, channels, kernel_size=k, stride=k)
    if factor < 1:
        return nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)
    return nn.Identity()


class Reassemble(nn.Module):
    """Tokens (N, 1 + h*w, C) -> feature map (N, channels, h*f, w*f) for a resample factor f.

    Children are registered under the official `nn.Sequential` indices (0 readout, 3 projection,
    4 resample; 1 and 2 were parameter-free reshapes) so state-dict keys match the released files.
    """

    def __init__(self, readout: str, embed_dim: int, channels: int, factor: float) -> None:
        super().__init__()
        self.add_module("0", _make_readout(readout, embed_dim))
        self.add_module("3", nn.Conv2d(embed_dim, channels, kernel_size=1))
        if factor != 1:
            self.add_module("4", make_resample(channels, factor))

    def forward(self, tokens: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
        patches = getattr(self, "0")(tokens)
        fmap = patches.transpose(1, 2).unflatten(2, grid_hw)
        for name in ("3", "4"):
            if name in self._modules:
                fmap = self._modules[name](fmap)
        return fmap


def _cubic_resample_matrix(
    out_len: int | torch.Tensor, in_len: int, scale: float | torch.Tensor, device: torch.device
) -> torch.Tensor:
    """(out_len, in_len) matrix of PyTorch's bicubic resampling (Keys a = -0.75, align_corners=False) by
    `scale_factor` = scale: output i samples source coordinate (i + 0.5) / scale - 0.5, taps clamped at the
    edges. Built from tensor ops so that a traced (ONNX) graph recomputes it for every input size."""
    dst = torch.arange(out_len, dtype=torch.float32, device=device)
    src = (dst + 0.5) * (1.0 / scale) - 0.5  # 1 / scale first (in double when eager), as PyTorch does
    base = torch.floor(src)
    t = src - base
    a = -0.75
    near = torch.stack((t, 1 - t))  # distances to the two inner taps, in [0, 1]
    far = near + 1  # distances to the two outer taps, in [1, 2]
    inner = ((a + 2) * near - (a + 3)) * near * near + 1
    outer = ((a * far - 5 * a) * far + 8 * a) * far - 4 * a
    weights = torch.stack((outer[0], inner[0], inner[1], outer[1]))  # taps at base - 1, base, base + 1, base + 2
    taps = (base[None] + torch.arange(-1, 3, dtype=torch.float32, device=device)[:, None]).clamp(0, in_len - 1)
    columns = torch.arange(in_len, dtype=torch.float32, device=device)
    return ((taps[..., None] == columns) * weights[..., None]).sum(dim=0)


def resize_position_embedding(
    pos_embed: torch.Tensor, grid_hw: tuple[int, int], rule: PositionEmbeddingResize
) -> torch.Tensor:
    """(1, 1 + g*g, C) embeddings trained on a g x g grid -> (1, 1 + h*w, C) by `rule`, in float32.

    The offset rule (DINOv2, Depth Anything V2) leaves the embeddings untouched at the g x g grid, as the
    original does; elsewhere it is `F.interpolate(scale_factor=((h + o) / g, (w + o) / g), mode="bicubic")`,
    computed as two resampling matrices so that exported graphs stay exact at every input size.
    """
    cls_embed, grid_embed = pos_embed[:, :1], pos_embed[0, 1:]
    old = int(math.sqrt(grid_embed.shape[0]))
    height, width = grid_hw
    grid_embed = grid_embed.float().reshape(old, old, -1)
    if rule.offset is None:
        if (old, old) == (height, width):
            return pos_embed
        resized = F.interpolate(
            grid_embed.permute(2, 0, 1)[None], size=grid_hw, mode=rule.mode, antialias=rule.antialias,
            align_corners=False,
        )[0].permute(1, 2, 0)
    else:
        # offset 0 at the pretraining grid makes both matrices exact identities: the original's "no resize".
        offset = rule.offset * (1 - ((height == old) & (width == old)) * 1.0)
        rows = _cubic_resample_matrix(height, old, (height + offset) / old, grid_embed.device)
        cols = _cubic_resample_matrix(width, old, (width + offset) / old, grid_embed.device)
        # float32 even under fp16/bf16 autocast, as the original interpolates in float32.
        with torch.autocast(grid_embed.device.type, enabled=False):
            resized = torch.einsum("hi,ijc,wj->hwc", rows, grid_embed, cols)
    grid_embed = resized.reshape(1, -1, resized.shape[-1]).to(pos_embed.dtype)
    return torch.cat((cls_embed, grid_embed), dim=1)


def embed_patches(vit: VisionTransformer, fmap: torch.Tensor, rule: PositionEmbeddingResize) -> torch.Tensor:
    """Patch feature map (N, C, h, w) -> tokens (N, 1 + h*w, C): class token first, position embedding added."""
    grid_hw = (fmap.shape[-2], fmap.shape[-1])
    tokens = fmap.flatten(2).transpose(1, 2)
    tokens = torch.cat((vit.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
    return tokens + resize_position_embedding(vit.pos_embed, grid_hw, rule)


def check_network_input(x: torch.Tensor, stride: int) -> None:
    """ValueError unless x is an (N, 3, H, W) batch with H and W multiples of `stride`."""
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[-2] % stride or x.shape[-1] % stride:
        raise ValueError(
            f"the network expects an (N, 3, H, W) batch with H and W multiples of {stride}, got {tuple(x.shape)}"
        )


class DPTEncoder(nn.Module):
    """Backbone + reassemble: image (N, 3, H, W) -> four maps at 1/4, 1/8, 1/16, 1/32 of H, W.

    `self.model` is the timm VisionTransformer (for the hybrid, its `patch_embed.backbone` is the
    ResNet-50 stem). Official key names: `pretrained.model.*`, `pretrained.act_postprocess{1..4}.*`.
    """

    def __init__(self, arch: DPTArchitecture) -> None:
        super().__init__()
        self.arch = arch
        img_size = arch.pretrain_grid * arch.patch_size
        vit_kwargs = dict(
            img_size=img_size, embed_dim=arch.embed_dim, depth=arch.depth, num_heads=arch.num_heads,
            mlp_ratio=arch.mlp_ratio, num_classes=0, norm_layer=partial(nn.LayerNorm, eps=arch.layer_norm_eps),
        )
        if arch.backbone == "vit_hybrid":
            resnet = ResNetV2(
                layers=arch.resnet_layers, channels=arch.resnet_channels, stem_chs=arch.resnet_stem_channels,
                num_classes=0, global_pool="", preact=False, stem_type="same",
                conv_layer=_STD_CONV[arch.weight_standardization],
            )
            # HybridEmbed measures the ResNet's output grid with one dummy forward at img_size.
            embed = partial(HybridEmbed, backbone=resnet)
            self.model = VisionTransformer(patch_size=1, embed_layer=embed, **vit_kwargs)
        else:
            self.model = VisionTransformer(patch_size=arch.patch_size, **vit_kwargs)
        # Only the hybrid's last two decoder inputs come from ViT tokens; the first two are ResNet maps.
        factors = (4.0, 2.0, 1.0, 0.5)
        first_token_level = 2 if arch.backbone == "vit_hybrid" else 0
        for level in range(first_token_level, 4):
            self.add_module(
                f"act_postprocess{level + 1}",
                Reassemble(arch.readout, arch.embed_dim, arch.reassemble_channels[level], factors[level]),
            )

    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], tuple[int, int]]:
        """Patch tokens with class token and position embedding; plus the hybrid's ResNet stage maps."""
        stage_maps: list[torch.Tensor] = []
        patch_embed = self.model.patch_embed
        if self.arch.backbone == "vit_hybrid":
            resnet = patch_embed.backbone
            fmap = resnet.stem(x)
            for stage in resnet.stages:
                fmap = stage(fmap)
                stage_maps.append(fmap)
            fmap = patch_embed.proj(fmap)
        else:
            fmap = patch_embed.proj(x)
        grid_hw = (fmap.shape[-2], fmap.shape[-1])
        return embed_patches(self.model, fmap, self.arch.pos_embed_resize), stage_maps[:2], grid_hw

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_network_input(x, self.arch.stride)
        tokens, outputs, grid_hw = self._embed(x)
        taps = self.arch.taps
        tapped = []
        # The blocks after the last tap (and the final norm) do not influence the decoder: skip them.
        for index, block in enumerate(self.model.blocks[: taps[-1] + 1]):
            tokens = block(tokens)
            if index in taps:
                tapped.append(tokens)
        first_token_level = len(outputs)
        for level, block_tokens in enumerate(tapped, start=first_token_level):
            outputs.append(self._modules[f"act_postprocess{level + 1}"](block_tokens, grid_hw))
        return outputs


class DINOv2Encoder(VisionTransformer):
    """DINOv2 ViT (patch 14, LayerScale) as Depth Anything V2 uses it: image -> four tapped token maps.

    A timm VisionTransformer whose parameter names are the original DINOv2's (`patch_embed.proj`,
    `cls_token`, `pos_embed`, `blocks.N.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2,
    ls2.gamma}`, `norm`), plus DINOv2's `mask_token` (unused at inference, kept so that released
    checkpoints load strictly and round-trip).
    """

    def __init__(self, arch: DepthAnythingV2Architecture) -> None:
        super().__init__(
            img_size=arch.pretrain_grid * arch.patch_size, patch_size=arch.patch_size, embed_dim=arch.embed_dim,
            depth=arch.depth, num_heads=arch.num_heads, mlp_ratio=arch.mlp_ratio, init_values=1.0, num_classes=0,
            norm_layer=partial(nn.LayerNorm, eps=arch.layer_norm_eps),
        )
        self.arch = arch
        self.mask_token = nn.Parameter(torch.zeros(1, arch.embed_dim))

    def tap(self, x: torch.Tensor) -> tuple[list[torch.Tensor], tuple[int, int]]:
        """(N, 3, H, W), H and W multiples of 14 -> four (N, h*w, C) patch-token maps after the final
        LayerNorm (no class token), and the patch grid (h, w) = (H / 14, W / 14)."""
        check_network_input(x, self.arch.stride)
        fmap = self.patch_embed.proj(x)
        grid_hw = (fmap.shape[-2], fmap.shape[-1])
        tokens = embed_patches(self, fmap, self.arch.pos_embed_resize)
        taps = self.arch.taps
        tapped = []
        # Blocks after the last tap do not influence the head: skip them.
        for index, block in enumerate(self.blocks[: taps[-1] + 1]):
            tokens = block(tokens)
            if index in taps:
                tapped.append(self.norm(tokens)[:, 1:])
        return tapped, grid_hw
