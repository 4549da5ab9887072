"""Geometric and photometric augmentation for (image, depth) pairs, applied identically to both.

Pure numpy/OpenCV functions of arrays: image (H, W, 3) uint8 RGB, depth (H, W) float32 metres with 0 =
invalid. Depth is only ever resampled with nearest neighbour, so no invented depth appears between a
valid pixel and an invalid one. Randomness comes from an explicit numpy Generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation; the defaults are the common KITTI recipe.

    kb_crop: crop every image to kb_height x kb_width anchored at the bottom, centred horizontally.
    crop_height/crop_width: random crop after the KB crop (multiples of 32 for DPT); 0 disables.
    rotation_degrees: uniform rotation in [-r, r]; flip_probability: horizontal flip.
    gamma, brightness, colour: multiplicative jitter ranges (colour is per RGB channel).
    """

    kb_crop: bool = True
    kb_height: int = 352
    kb_width: int = 1216
    crop_height: int = 352
    crop_width: int = 704
    rotation_degrees: float = 1.0
    flip_probability: float = 0.5
    gamma: tuple[float, float] = (0.9, 1.1)
    brightness: tuple[float, float] = (0.9, 1.1)
    colour: tuple[float, float] = (0.9, 1.1)
    photometric_probability: float = 0.5


def kb_crop_offset(height: int, width: int, crop_height: int = 352, crop_width: int = 1216) -> tuple[int, int]:
    """(top, left) of the KB crop: bottom-anchored, horizontally centred (KITTI benchmark convention)."""
    if height < crop_height or width < crop_width:
        raise ValueError(f"image {height}x{width} is smaller than the KB crop {crop_height}x{crop_width}")
    return height - crop_height, (width - crop_width) // 2


def crop(array: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """array[top:top+height, left:left+width] with a bounds check (works for (H, W) and (H, W, C))."""
    if top < 0 or left < 0 or top + height > array.shape[0] or left + width > array.shape[1]:
        raise ValueError(f"crop {height}x{width} at ({top}, {left}) exceeds array of shape {array.shape[:2]}")
    return array[top : top + height, left : left + width]


def rotate_pair(image: np.ndarray, depth: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate about the image centre: bilinear for the image, nearest for depth; uncovered pixels -> 0."""
    height, width = depth.shape
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), degrees, 1.0)
    rotated_image = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    rotated_depth = cv2.warpAffine(depth, matrix, (width, height), flags=cv2.INTER_NEAREST,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return rotated_image, rotated_depth


def photometric_jitter(image: np.ndarray, gamma: float, brightness: float, colour: np.ndarray) -> np.ndarray:
    """image^gamma * brightness * colour[channel] in [0, 1] space, back to uint8. colour: (3,)."""
    scaled = (image.astype(np.float32) / 255.0) ** gamma * brightness * colour.astype(np.float32)
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)


def augment_pair(
    image: np.ndarray, depth: np.ndarray, config: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Training augmentation in the recipe's order: rotation, random crop, flip, photometric jitter.

    image: (H, W, 3) uint8, depth: (H, W) float32 metres, both already KB-cropped if configured.
    Returns the augmented pair with shape (crop_height, crop_width) when cropping is enabled.
    """
    if config.rotation_degrees > 0:
        image, depth = rotate_pair(image, depth, rng.uniform(-config.rotation_degrees, config.rotation_degrees))
    if config.crop_height > 0 and config.crop_width > 0:
        height, width = depth.shape
        if height < config.crop_height or width < config.crop_width:
            raise ValueError(
                f"random crop {config.crop_height}x{config.crop_width} exceeds the image {height}x{width}"
            )
        top = int(rng.integers(0, height - config.crop_height + 1))
        left = int(rng.integers(0, width - config.crop_width + 1))
        image = crop(image, top, left, config.crop_height, config.crop_width)
        depth = crop(depth, top, left, config.crop_height, config.crop_width)
    if rng.random() < config.flip_probability:
        image, depth = image[:, ::-1], depth[:, ::-1]
    if rng.random() < config.photometric_probability:
        image = photometric_jitter(image, rng.uniform(*config.gamma), rng.uniform(*config.brightness),
                                   rng.uniform(*config.colour, size=3))
    return np.ascontiguousarray(image), np.ascontiguousarray(depth)
