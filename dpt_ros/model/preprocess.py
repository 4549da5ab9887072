"""Image preprocessing exactly as the official DPT scripts do it.

RGB in [0, 1] -> keep-aspect "minimal" resize with OpenCV bicubic so both sides are multiples of 32
-> normalise with mean = std = 0.5 -> (1, 3, h, w) float32. (`transformers`' image processor squashes
DPT-Hybrid input to 384x384 bilinear instead; that changes the numbers, so it is not used.)
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from dpt_ros.model.presets import Preset, get_preset

MULTIPLE = 32


def _snap(value: float, multiple: int) -> int:
    # np.round (half to even) as the reference; never below one multiple, which the reference allows
    # for tiny images but the network cannot run on.
    return max(multiple, int(np.round(value / multiple) * multiple))


def network_input_size(height: int, width: int, target_size: tuple[int, int], multiple: int = MULTIPLE) -> tuple[int, int]:
    """(height, width) of the network input for an image, by the reference's "minimal" rule.

    target_size is (width, height). The image is scaled by whichever of the two target ratios is
    closer to 1 (keeping its aspect ratio), then each side is rounded to a multiple of `multiple`.
    """
    target_w, target_h = target_size
    scale_h, scale_w = target_h / height, target_w / width
    scale = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h
    return _snap(scale * height, multiple), _snap(scale * width, multiple)


def validate_rgb_image(image: object) -> np.ndarray:
    """`image` as an (H, W, 3) uint8 array, or a ValueError/TypeError that says what is wrong with it."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected an (H, W, 3) uint8 numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(
            f"expected uint8 RGB values in [0, 255], got dtype {image.dtype}; "
            "convert float images with (image * 255).round().astype(np.uint8)"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        hint = " (a mono image must be stacked to 3 channels first)" if image.ndim == 2 or image.shape[-1] == 1 else ""
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}{hint}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image.shape}")
    return image


def preprocess(image: np.ndarray, preset: str | Preset, input_size: tuple[int, int] | None = None) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, h, w) float32 normalised network input.

    input_size: (width, height) target overriding the preset's; h and w follow the "minimal" rule.
    """
    image = validate_rgb_image(image)
    target = input_size or get_preset(preset).input_size
    return to_network_input(image, network_input_size(image.shape[0], image.shape[1], target))


def to_network_input(image: np.ndarray, shape_hw: tuple[int, int]) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, h, w) float32 network input at exactly shape_hw = (h, w):
    OpenCV bicubic resize of the [0, 1] image, normalised with mean = std = 0.5.

    For callers that choose the network size themselves (multi-scale test-time augmentation).
    """
    image = validate_rgb_image(image)
    net_h, net_w = shape_hw
    rgb = image.astype(np.float32) / 255.0
    resized = cv2.resize(rgb, (net_w, net_h), interpolation=cv2.INTER_CUBIC)
    normalised = (resized - 0.5) / 0.5
    return torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))[None]
