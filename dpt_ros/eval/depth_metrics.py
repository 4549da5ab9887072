"""KITTI depth evaluation: the nine standard metrics, Garg/Eigen crops, depth range and per-image alignment.

Conventions follow the Eigen-split protocol used by the published tables (see docs/training.md):
ground truth is valid where min_depth < g < max_depth (and inside the crop), predictions are clamped to
[min_depth, max_depth], metrics are computed per image and the aggregate is the mean over images.
Everything is vectorised numpy in float64 so that small differences between models are not rounding noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from dpt_ros.alignment.fit import AlignmentConfig, fit_scale_shift

METRIC_NAMES = ("delta1", "delta2", "delta3", "abs_rel", "sq_rel", "rmse", "rmse_log", "silog", "log10")
# metrics where larger is better (used to pick "best" checkpoints)
HIGHER_IS_BETTER = frozenset({"delta1", "delta2", "delta3"})

CropName = Literal["garg", "eigen", "none"]
AlignmentName = Literal["none", "least_squares_inverse", "median"]

# (top, bottom, left, right) as fractions of image height/width
_CROP_FRACTIONS = {
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    "eigen": (0.3324324, 0.91351351, 0.03594771, 0.96405229),
}


# Least squares with every quality gate of the node's alignment off: evaluation must score bad fits too.
_PROTOCOL_FIT = AlignmentConfig(min_points=2, min_inlier_ratio=0.0, min_depth_spread=0.0, min_conditioning=0.0)


@dataclass(frozen=True)
class EvalConfig:
    """How predictions are scored.

    min_depth / max_depth: metres; ground truth outside (min_depth, max_depth) is ignored.
    crop: "garg", "eigen" or "none", applied on the full-size image.
    alignment: "none" for metric models; "least_squares_inverse" (DPT protocol: per-image scale+shift fit of
        a relative inverse-depth prediction to 1/gt) or "median" (per-image median scaling of a depth
        prediction known up to scale).
    """

    min_depth: float = 1e-3
    max_depth: float = 80.0
    crop: CropName = "garg"
    alignment: AlignmentName = "none"

    def __post_init__(self) -> None:
        if not 0.0 < self.min_depth < self.max_depth:
            raise ValueError(f"need 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}")
        if self.crop not in ("garg", "eigen", "none"):
            raise ValueError(f"unknown crop {self.crop!r}; expected 'garg', 'eigen' or 'none'")
        if self.alignment not in ("none", "least_squares_inverse", "median"):
            raise ValueError(
                f"unknown alignment {self.alignment!r}; expected 'none', 'least_squares_inverse' or 'median'"
            )


def crop_mask(height: int, width: int, crop: CropName) -> np.ndarray:
    """Boolean (height, width) mask of the evaluation crop; "none" keeps every pixel."""
    mask = np.zeros((height, width), dtype=bool)
    if crop == "none":
        mask[:] = True
        return mask
    if crop not in _CROP_FRACTIONS:
        raise ValueError(f"unknown crop {crop!r}; expected 'garg', 'eigen' or 'none'")
    top, bottom, left, right = _CROP_FRACTIONS[crop]
    mask[int(top * height) : int(bottom * height), int(left * width) : int(right * width)] = True
    return mask


def evaluation_mask(gt: np.ndarray, config: EvalConfig) -> np.ndarray:
    """Pixels that count: finite ground truth strictly inside (min_depth, max_depth) and inside the crop.

    gt: (H, W) metres, 0 or NaN where invalid. Returns (H, W) bool.
    """
    gt = np.asarray(gt)
    with np.errstate(invalid="ignore"):
        in_range = np.isfinite(gt) & (gt > config.min_depth) & (gt < config.max_depth)
    return in_range & crop_mask(gt.shape[0], gt.shape[1], config.crop)


def depth_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """The nine metrics over matching 1-D arrays of valid pixels.

    pred, gt: (M,) metres, both strictly positive (callers clamp pred and mask gt first).
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 1:
        raise ValueError(f"pred and gt must be matching 1-D arrays, got {pred.shape} and {gt.shape}")
    if pred.size == 0:
        raise ValueError("no valid pixels to evaluate")
    ratio = np.maximum(pred / gt, gt / pred)
    diff = pred - gt
    log_diff = np.log(pred) - np.log(gt)
    return {
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
        "abs_rel": float(np.mean(np.abs(diff) / gt)),
        "sq_rel": float(np.mean(diff**2 / gt)),
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "rmse_log": float(np.sqrt(np.mean(log_diff**2))),
        # clip: mean(e^2) - mean(e)^2 can be a hair below zero in floating point when e is constant
        "silog": float(100.0 * np.sqrt(max(np.mean(log_diff**2) - np.mean(log_diff) ** 2, 0.0))),
        "log10": float(np.mean(np.abs(np.log10(pred) - np.log10(gt)))),
    }


def align_least_squares_inverse(
    pred_inverse: np.ndarray, gt: np.ndarray, mask: np.ndarray, max_depth: float
) -> np.ndarray:
    """DPT protocol: fit scale+shift of a relative inverse depth to 1/gt over mask, cap, invert.

    pred_inverse: (H, W) relative inverse depth (arbitrary scale and shift); gt: (H, W) metres;
    mask: (H, W) bool. The fit is the plain least squares of sum((s * pred + t - 1/gt)^2), solved by the
    node's `fit_scale_shift(method="lstsq")` with its quality gates off (an evaluation scores every image,
    good fit or not). The aligned inverse depth is clamped from below at 1/max_depth (so far and negative
    values become max_depth) before inversion. Returns (H, W) metres.
    """
    fit = fit_scale_shift(pred_inverse, np.where(mask, gt, np.nan), method="lstsq", config=_PROTOCOL_FIT)
    if not (np.isfinite(fit.scale) and np.isfinite(fit.shift)):
        raise ValueError(f"cannot fit scale and shift: {fit.reason}")
    aligned_inverse = np.maximum(fit.scale * np.asarray(pred_inverse, dtype=np.float64) + fit.shift, 1.0 / max_depth)
    return 1.0 / aligned_inverse


def align_median(pred_depth: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median scaling: multiply a depth known up to scale by median(gt) / median(pred) over mask.

    pred_depth, gt: (H, W) metres (pred up to an unknown scale); mask: (H, W) bool. Returns (H, W).
    """
    pred_median = float(np.median(pred_depth[mask]))
    if not pred_median > 0.0:
        raise ValueError("median scaling needs a positive median prediction over the valid pixels")
    return np.asarray(pred_depth, dtype=np.float64) * (float(np.median(gt[mask])) / pred_median)


def evaluate_image(pred: np.ndarray, gt: np.ndarray, config: EvalConfig = EvalConfig()) -> dict[str, float]:
    """Metrics of one full-size prediction against its ground truth.

    pred: (H, W) metres for metric models, relative inverse depth for alignment "least_squares_inverse",
        depth up to scale for "median". NaN where the model predicted nothing (excluded).
    gt: (H, W) metres, 0 = invalid. Returns {metric name: value}.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth shape {gt.shape}")
    mask = evaluation_mask(gt, config) & np.isfinite(pred)
    if not mask.any():
        raise ValueError("no ground-truth pixel inside the depth range and crop")
    if config.alignment == "least_squares_inverse":
        pred = align_least_squares_inverse(pred, gt, mask, config.max_depth)
    elif config.alignment == "median":
        pred = align_median(pred, gt, mask)
    clamped = np.clip(pred[mask], config.min_depth, config.max_depth)
    return depth_metrics(clamped, gt[mask])


class MetricAggregator:
    """Running mean over images of per-image metrics (the convention of the published KITTI tables)."""

    def __init__(self) -> None:
        self._sums = dict.fromkeys(METRIC_NAMES, 0.0)
        self.count = 0

    def add(self, metrics: dict[str, float]) -> None:
        for name in METRIC_NAMES:
            self._sums[name] += metrics[name]
        self.count += 1

    def state(self) -> np.ndarray:
        """(count, sums...) as a float64 vector, for summing across distributed ranks."""
        return np.array([self.count] + [self._sums[name] for name in METRIC_NAMES], dtype=np.float64)

    @classmethod
    def from_state(cls, state: np.ndarray) -> MetricAggregator:
        aggregator = cls()
        aggregator.count = int(round(float(state[0])))
        for name, value in zip(METRIC_NAMES, state[1:]):
            aggregator._sums[name] = float(value)
        return aggregator

    def mean(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("no image was evaluated")
        return {name: self._sums[name] / self.count for name in METRIC_NAMES}


def format_table(metrics: dict[str, float]) -> str:
    """Two-line text table in the column order of the published KITTI tables."""
    header = " ".join(f"{name:>9}" for name in METRIC_NAMES)
    values = " ".join(f"{metrics[name]:9.4f}" for name in METRIC_NAMES)
    return f"{header}\n{values}"
