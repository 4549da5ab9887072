"""Image preprocessing exactly as the official DPT and Depth Anything V2 scripts do it.

RGB / 255 in float64 -> keep-aspect resize by the preset's rule with OpenCV bicubic, both sides snapped to
multiples of the architecture's stride -> normalise with the preset's mean/std -> (1, 3, h, w) float32.
(Both references resize float64 images; OpenCV's float32 bicubic differs from it by up to ~1e-4.
`transformers`' image processors resize with Pillow instead; that changes the numbers, so they are not used.)
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch

from dpt_ros.model.presets import DPT_MEAN_STD, Preset, ResizeMethod, get_preset

MULTIPLE = 32


def _snap(value: float, multiple: int, at_least: int = 0) -> int:
    # np.round (half to even) as the references' `constrain_to_multiple_of`; a side that rounds below
    # `at_least` is rounded up instead. Never below one multiple, which the reference allows for tiny
    # images but the network cannot run on.
    snapped = int(np.round(value / multiple) * multiple)
    if snapped < at_least:
        snapped = int(np.ceil(value / multiple) * multiple)
    return max(multiple, snapped)


def _minimal(height: int, width: int, target_h: int, target_w: int, multiple: int) -> tuple[int, int]:
    scale_h, scale_w = target_h / height, target_w / width
    scale = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h
    return _snap(scale * height, multiple), _snap(scale * width, multiple)


def _lower_bound(height: int, width: int, target_h: int, target_w: int, multiple: int) -> tuple[int, int]:
    scale = max(target_h / height, target_w / width)
    return _snap(scale * height, multiple, at_least=target_h), _snap(scale * width, multiple, at_least=target_w)


_RESIZE_RULES: dict[str, Callable[[int, int, int, int, int], tuple[int, int]]] = {
    "minimal": _minimal,
    "lower_bound": _lower_bound,
}


def network_input_size(
    height: int, width: int, target_size: tuple[int, int], multiple: int = MULTIPLE, method: ResizeMethod = "minimal"
) -> tuple[int, int]:
    """(height, width) of the network input for an image, by the reference's keep-aspect rule.

    target_size is (width, height). "minimal" scales by whichever of the two target ratios is closer to
    1; "lower_bound" by the larger one, so both sides reach the target. Each side is then rounded to a
    multiple of `multiple` (see `_snap`).
    """
    target_w, target_h = target_size
    return _RESIZE_RULES[method](height, width, target_h, target_w, multiple)


def preset_input_size(height: int, width: int, preset: str | Preset, input_size: tuple[int, int] | None = None) -> tuple[int, int]:
    """(height, width) of the network input for an image under a preset's size rule.

    input_size: (width, height) target overriding the preset's.
    """
    preset = get_preset(preset)
    return network_input_size(
        height, width, input_size or preset.input_size, preset.architecture.stride, preset.resize_method
    )


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

    input_size: (width, height) target overriding the preset's; h and w follow the preset's size rule.
    """
    image = validate_rgb_image(image)
    preset = get_preset(preset)
    shape_hw = preset_input_size(image.shape[0], image.shape[1], preset, input_size)
    return to_network_input(image, shape_hw, preset.mean_std)


def to_network_input(
    image: np.ndarray,
    shape_hw: tuple[int, int],
    mean_std: tuple[tuple[float, float, float], tuple[float, float, float]] = DPT_MEAN_STD,
) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, h, w) float32 network input at exactly shape_hw = (h, w):
    OpenCV bicubic resize of the [0, 1] float64 image, normalised by the per-channel (mean, std).

    For callers that choose the network size themselves (multi-scale test-time augmentation).
    """
    image = validate_rgb_image(image)
    net_h, net_w = shape_hw
    resized = cv2.resize(image / 255.0, (net_w, net_h), interpolation=cv2.INTER_CUBIC)
    mean, std = (np.asarray(values, dtype=np.float64) for values in mean_std)
    normalised = ((resized - mean) / std).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))[None]
