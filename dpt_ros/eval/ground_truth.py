"""Scoring dense metric depth against a dense ground-truth depth image (KITTI annotated depth, a simulator's
depth, a depth camera), with the KITTI protocol of ``depth_metrics`` and the point scoring of ``holdout``.

Every ground-truth pixel in range and inside the crop counts; a method that gives no depth at such a pixel
(NaN) is not scored there but loses coverage, as on held-out LiDAR points.
"""

from __future__ import annotations

import numpy as np

from dpt_ros.eval.depth_metrics import EvalConfig, evaluation_mask
from dpt_ros.eval.holdout import RANGE_BINS, PointScores, bin_label, score_points


def ground_truth_pixels(gt: np.ndarray, config: EvalConfig) -> tuple[np.ndarray, np.ndarray]:
    """(flat indices (M,), ground-truth metres (M,)) of the pixels that count: valid, in range, in the crop.

    gt: (H, W) metres, 0 or NaN where invalid.
    """
    mask = evaluation_mask(gt, config)
    index = np.flatnonzero(mask)
    return index, np.asarray(gt, dtype=np.float64).ravel()[index]


def score_dense(pred: np.ndarray, index: np.ndarray, gt_values: np.ndarray, config: EvalConfig,
                bins: tuple[tuple[float, float], ...] = RANGE_BINS) -> tuple[PointScores, dict[str, PointScores]]:
    """Scores of (H, W) metric ``pred`` at the ground-truth pixels of ``ground_truth_pixels``: all of them, and
    per range bin (keyed by ``bin_label``). Predictions are clamped to [min_depth, max_depth] (KITTI)."""
    values = np.asarray(pred, dtype=np.float64).ravel()[index]
    overall = score_points(values, gt_values, config.min_depth, config.max_depth)
    by_range = {}
    for low, high in bins:
        in_bin = (gt_values >= low) & (gt_values < high)
        by_range[bin_label(low, high)] = score_points(values[in_bin], gt_values[in_bin], config.min_depth,
                                                      config.max_depth)
    return overall, by_range
