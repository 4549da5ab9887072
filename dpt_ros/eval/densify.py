"""LiDAR-only dense depth: what a robot gets from its LiDAR without any camera network (the baselines).

Both take a sparse depth image, (H, W) metres with NaN (or 0) where no point landed, and return (H, W) float32
metres with NaN where they give nothing.

- ``nearest_neighbour_fill``: every pixel takes the depth of the nearest LiDAR pixel (Euclidean in the image).
- ``ip_basic_fill``: the classical morphological completion of Ku, Harakeh and Waslander, "In Defense of
  Classical Image Processing: Fast Depth Completion on the CPU" (CRV 2018), written from the paper's
  description of its default pipeline: invert depth (so dilation, a maximum, prefers near points), dilate with
  a 5×5 diamond, close small holes (5×5), fill remaining small holes by a 7×7 dilation, extend each column's
  top-most value to the top of the image, fill large holes by a 31×31 dilation, median blur 5×5 and Gaussian
  blur 5×5 (kept only where there was depth), invert back. One deliberate difference: the Gaussian blur
  averages filled pixels only, so holes left at low beam counts do not pull their borders towards 100 m.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

# IP-Basic inverts depth as max - d with max = 100 m (the paper's value, above KITTI's 80 m cap); inverted values
# below _EMPTY mark empty pixels, so deeper points are clipped to CLIPPED_DEPTH to stay visible.
IP_BASIC_MAX_DEPTH = 100.0
_EMPTY = 0.1
CLIPPED_DEPTH = IP_BASIC_MAX_DEPTH - 2 * _EMPTY
_DIAMOND_5 = np.array([[0, 0, 1, 0, 0],
                       [0, 1, 1, 1, 0],
                       [1, 1, 1, 1, 1],
                       [0, 1, 1, 1, 0],
                       [0, 0, 1, 0, 0]], dtype=np.uint8)
_FULL_5 = np.ones((5, 5), np.uint8)
_FULL_7 = np.ones((7, 7), np.uint8)
_FULL_31 = np.ones((31, 31), np.uint8)


def _valid(sparse: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(sparse) & (sparse > 0)


def nearest_neighbour_fill(sparse: np.ndarray) -> np.ndarray:
    """(H, W) float32: the depth of the nearest valid pixel of ``sparse`` (ties: the first in scipy's
    exact Euclidean distance transform); all NaN when ``sparse`` has no valid pixel."""
    sparse = np.asarray(sparse, dtype=np.float32)
    valid = _valid(sparse)
    if not valid.any():
        return np.full(sparse.shape, np.nan, np.float32)
    rows, cols = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return sparse[rows, cols]


def ip_basic_fill(sparse: np.ndarray) -> np.ndarray:
    """(H, W) float32 metres by IP-Basic's default (Gaussian-blur) pipeline; NaN where it gives nothing
    (every pixel once any LiDAR pixel exists: the large-hole fill and top extension reach everywhere a
    31×31 window and a column can). Depths beyond CLIPPED_DEPTH (99.8 m) are clipped to it."""
    sparse = np.asarray(sparse, dtype=np.float32)
    valid = _valid(sparse)
    # invert: near points get large values, so the dilations (local maxima) keep the nearest surface
    depth = np.where(valid, np.float32(IP_BASIC_MAX_DEPTH) - np.minimum(sparse, np.float32(CLIPPED_DEPTH)),
                     np.float32(0.0)).astype(np.float32)
    depth = cv2.dilate(depth, _DIAMOND_5)
    depth = cv2.morphologyEx(depth, cv2.MORPH_CLOSE, _FULL_5)
    empty = depth < _EMPTY
    depth[empty] = cv2.dilate(depth, _FULL_7)[empty]
    # extend each column's top-most value upwards (the LiDAR does not see above its highest beam)
    has_value = depth > _EMPTY
    top = np.argmax(has_value, axis=0)
    rows = np.arange(depth.shape[0])[:, None]
    above = (rows < top[None, :]) & has_value.any(axis=0)[None, :]
    depth[above] = np.broadcast_to(depth[top, np.arange(depth.shape[1])][None, :], depth.shape)[above]
    empty = depth < _EMPTY
    depth[empty] = cv2.dilate(depth, _FULL_31)[empty]
    filled = depth > _EMPTY
    depth = np.where(filled, cv2.medianBlur(depth, 5), depth)
    # Gaussian blur of the filled pixels only (normalised convolution): the original blurs the zeros of holes
    # that survive the fills into their borders, metres-wrong values that only appear at low beam counts
    filled = depth > _EMPTY
    weight = cv2.GaussianBlur(filled.astype(np.float32), (5, 5), 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        blurred = cv2.GaussianBlur(np.where(filled, depth, np.float32(0.0)), (5, 5), 0) / weight
    depth = np.where(filled, blurred, depth).astype(np.float32)
    with np.errstate(invalid="ignore"):
        metres = np.where(depth > _EMPTY, np.float32(IP_BASIC_MAX_DEPTH) - depth, np.float32(np.nan))
    return metres.astype(np.float32)
