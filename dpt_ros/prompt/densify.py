"""Sparse depth on a coarse grid -> a dense prompt: near-wins morphological fill, then nearest fill.

Prompt Depth Anything was trained on dense low-resolution prompts (iPhone LiDAR depth, 192 x 256); its
min-max normalisation takes every prompt pixel at face value, so holes (NaN or 0) must be filled
before the network sees them, or the minimum becomes 0 m. A spinning LiDAR projected onto a grid of
that size leaves gaps between rings and, above the top ring, no data at all. Two documented fills:

- "nearest": every empty cell takes the depth of the nearest valid cell (OpenCV's 5x5 chamfer
  distance transform, within 2 % of the Euclidean distance; ties broken by OpenCV's scan order).
- "morphological" (the idea of IP-Basic, Ku et al. 2018, on the coarse grid): `iterations` passes of
  a `kernel` x `kernel` dilation in which an empty cell takes the *nearest* (smallest) depth among its
  valid neighbours, so foreground edges are not eroded by the background seen past them; cells still
  empty after that (beyond the dilation reach, e.g. above the top ring) are filled by "nearest".
  Valid cells are never changed.
"""

from __future__ import annotations

from typing import Final, Literal

import cv2
import numpy as np

DensifyMethod = Literal["nearest", "morphological"]
DENSIFY_METHODS: Final[tuple[str, ...]] = ("nearest", "morphological")


def valid_depth_mask(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) bool: finite and > 0 (0 is "no return" in 16UC1 depth images, NaN in 32FC1)."""
    depth = np.asarray(depth_m)
    with np.errstate(invalid="ignore"):
        return np.isfinite(depth) & (depth > 0)


def fill_nearest(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) sparse depth -> (H, W) float32 with every invalid cell set to its nearest valid cell's depth.

    Valid cells keep their value. Raises ValueError when no cell is valid (there is nothing to fill from).
    """
    depth = np.asarray(depth_m, dtype=np.float32)
    valid = valid_depth_mask(depth)
    if not valid.any():
        raise ValueError("cannot densify a depth image without a single valid pixel")
    if valid.all():
        return depth.copy()
    # distanceTransform measures to the nearest zero pixel: the valid cells are the zeros. With
    # DIST_LABEL_PIXEL every zero pixel gets its own label, and each pixel the label of its nearest one.
    _, labels = cv2.distanceTransformWithLabels(
        (~valid).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL
    )
    depth_of_label = np.zeros(int(labels.max()) + 1, dtype=np.float32)
    depth_of_label[labels[valid]] = depth[valid]
    return np.where(valid, depth, depth_of_label[labels])


def fill_morphological(depth_m: np.ndarray, kernel: int = 3, iterations: int = 2) -> np.ndarray:
    """(H, W) sparse depth -> (H, W) float32 dense: near-wins dilation passes, then `fill_nearest`.

    kernel: odd window size in cells; iterations: dilation passes (reach = iterations * kernel // 2 cells).
    Raises ValueError when no cell is valid or the kernel is not a positive odd number.
    """
    if kernel < 1 or kernel % 2 == 0 or iterations < 0:
        raise ValueError(f"need an odd kernel >= 1 and iterations >= 0, got kernel={kernel}, iterations={iterations}")
    depth = np.asarray(depth_m, dtype=np.float32)
    valid = valid_depth_mask(depth)
    if not valid.any():
        raise ValueError("cannot densify a depth image without a single valid pixel")
    # A grey erosion (window minimum) with empty cells at +inf grows every surface into its empty
    # neighbours, the nearest surface winning; it copies depths, so filled cells hold exact input values.
    work = np.where(valid, depth, np.inf).astype(np.float32)
    window = np.ones((kernel, kernel), dtype=np.uint8)
    for _ in range(iterations):
        grown = cv2.erode(work, window, borderType=cv2.BORDER_CONSTANT, borderValue=np.inf)
        empty = np.isinf(work)
        work[empty] = grown[empty]
    dense = np.where(np.isinf(work), np.float32(np.nan), work)
    return fill_nearest(dense)


def densify(depth_m: np.ndarray, method: str) -> np.ndarray:
    """`fill_nearest` or `fill_morphological` (default kernel and passes) by name; see the module doc."""
    if method == "nearest":
        return fill_nearest(depth_m)
    if method == "morphological":
        return fill_morphological(depth_m)
    raise ValueError(f"unknown densification method {method!r}; use one of {', '.join(DENSIFY_METHODS)}")
