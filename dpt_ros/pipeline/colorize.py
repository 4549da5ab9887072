"""Colour-mapped depth for people to look at (rviz, rqt_image_view); never for computation."""

import cv2
import numpy as np


def colorize_depth(
    values: np.ndarray,
    value_range: tuple[float, float] | None = None,
    near_is_high: bool = False,
    colormap: int = cv2.COLORMAP_TURBO,
) -> np.ndarray:
    """(H, W) float depth -> (H, W, 3) uint8 BGR, near pixels at the warm (red) end of the colour map.

    value_range: (low, high) in the units of `values`; None stretches each frame over its finite
        values. Values outside the range saturate at its ends.
    near_is_high: True for inverse depth (larger = nearer), False for depth in metres.
    Pixels that are NaN or +-Inf are black.
    """
    finite = np.isfinite(values)
    if value_range is None:
        if not finite.any():
            return np.zeros(values.shape + (3,), dtype=np.uint8)
        low, high = float(values[finite].min()), float(values[finite].max())
    else:
        low, high = value_range
    span = high - low if high > low else 1.0
    scaled = (np.where(finite, values, low).astype(np.float32) - np.float32(low)) * np.float32(255.0 / span)
    if not near_is_high:
        scaled = 255.0 - scaled
    indices = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    colored = cv2.applyColorMap(indices, colormap)
    colored[~finite] = 0
    return colored
