"""Prompt Depth Anything (Lin et al., CVPR 2025): Depth Anything V2 conditioned on a low-resolution metric
depth prompt, as the original repository (DepthAnything/PromptDA) builds it.

    prompt (N, 1, h, w) metres --min/max per image--> [0, 1] --bilinear (align_corners=False) to each
    fusion block's map--> zero-initialised conv unit --> added inside refinenet4 .. refinenet1
    image (N, 3, H, W) in [0, 1] --ImageNet mean/std (inside)--> DINOv2 + DPT head --Sigmoid--> [0, 1]
    --* (max - min) + min--> metres

Everything but the prompt units is Depth Anything V2 (`DepthAnythingV2`: same encoder, head, taps and
state-dict names). The prompt units live in each fusion block as `resConfUnit_depth` (conv 3x3 1->F, ReLU,
conv 3x3 F->F, ReLU, conv 3x3 F->F whose weights start at zero, so an untrained unit leaves Depth
Anything V2's output unchanged); the image normalisation is the buffers `_mean`, `_std`. These are the
released checkpoint's names (`pretrained.*`, `depth_head.*`, `_mean`, `_std`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dpt_ros.model.architecture import DepthAnythingV2Architecture
from dpt_ros.model.depth_anything import DepthAnythingV2
from dpt_ros.model.presets import IMAGENET_MEAN_STD

PROMPT_UNIT = "resConfUnit_depth"


class PromptUnit(nn.Sequential):
    """The per-fusion-block prompt unit: (N, 1, h, w) normalised prompt -> (N, features, h, w) residual."""

    def __init__(self, features: int) -> None:
        last = nn.Conv2d(features, features, kernel_size=3, padding=1)
        # Zero start: before training, the unit adds nothing and the head is exactly Depth Anything V2's.
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        super().__init__(
            nn.Conv2d(1, features, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(features, features, kernel_size=3, padding=1),
            nn.ReLU(),
            last,
        )


def normalise_prompt(prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, 1, h, w) metres -> (the prompt scaled to [0, 1] per image, min, max), min and max (N, 1, 1, 1).

    min and max are `torch.quantile` 0 and 1 over each image's prompt, as the original (they equal its min
    and max exactly). A prompt of one depth has no range: its span is taken as 1 so the normalised prompt
    is 0 and the output de-normalises to that depth, never 0 / 0 = NaN; pipelines refuse such prompts
    before they get here (`dpt_ros.prompt.sources.check_prompt`). The prompt must be finite (no NaN holes:
    densify it first) and non-empty.
    """
    if prompt.ndim != 4 or prompt.shape[1] != 1 or prompt.shape[-2] * prompt.shape[-1] == 0:
        raise ValueError(f"a depth prompt is a non-empty (N, 1, h, w) tensor, got shape {tuple(prompt.shape)}")
    flat = prompt.reshape(prompt.shape[0], -1)
    low = torch.quantile(flat, 0.0, dim=1, keepdim=True)[:, :, None, None]
    high = torch.quantile(flat, 1.0, dim=1, keepdim=True)[:, :, None, None]
    span = high - low
    span = torch.where(span > 0, span, torch.ones_like(span))
    return (prompt - low) / span, low, high


class PromptDepthAnything(DepthAnythingV2):
    """forward(x: (N, 3, H, W) RGB in [0, 1], H and W multiples of 14; prompt: (N, 1, h, w) metres, any h x w)
    -> (N, H, W) metres within the prompt's [min, max].

    Without a prompt (`prompt=None`) the prompt units are skipped and the result is the head's Sigmoid
    output, a unitless depth in (0, 1) (0 = the nearest, 1 = the farthest of an unknown range): never metres.
    The architecture's max_depth must be 1 (a Sigmoid head whose output is a fraction of the prompt range).
    """

    def __init__(self, arch: DepthAnythingV2Architecture) -> None:
        if arch.max_depth != 1.0:
            raise ValueError(
                f"a prompt model's head outputs a fraction of the prompt range: max_depth must be 1, got {arch.max_depth}"
            )
        super().__init__(arch)
        for level in range(1, 5):
            getattr(self.depth_head.scratch, f"refinenet{level}").add_module(PROMPT_UNIT, PromptUnit(arch.features))
        mean, std = IMAGENET_MEAN_STD
        self.register_buffer("_mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("_std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, prompt: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        image = (x - self._mean) / self._std
        if prompt is None:
            return super().forward(image)
        normalised, low, high = normalise_prompt(prompt.to(x.dtype))
        scratch = self.depth_head.scratch

        def prompt_residual(level: int, size: tuple[int, int]) -> torch.Tensor:
            resized = F.interpolate(normalised, size=size, mode="bilinear", align_corners=False)
            return getattr(getattr(scratch, f"refinenet{level}"), PROMPT_UNIT)(resized)

        fraction = super().forward(image, prompt_residual)
        return fraction * (high - low)[:, 0] + low[:, 0]

