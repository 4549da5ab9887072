"""Honest scoring of dense depth against a sparse LiDAR that also drives the alignment.

Each scan is split into *fitting* points (given to the alignment, as the node would use them) and *held-out*
points (never seen by the alignment); metric depth is scored only at held-out pixels that no fitting point
touches. Baselines are computed on exactly the same points. Pure numpy; the metric set is the KITTI one of
``dpt_ros.eval.depth_metrics`` (shared, not duplicated).

Pixels are (row, col) integer indices with pixel centres at integer coordinates (the projection's convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpt_ros.eval.depth_metrics import METRIC_NAMES, depth_metrics

# metres; the bins the report breaks errors down by
RANGE_BINS: tuple[tuple[float, float], ...] = ((0.0, 10.0), (10.0, 20.0), (20.0, 40.0), (40.0, 80.0))
# fewer scored points than this in a bin or frame gives no metrics for it (too noisy to mean anything)
MIN_POINTS_FOR_METRICS = 5


@dataclass(frozen=True)
class HoldoutConfig:
    """Which LiDAR points are held out of the alignment and scored.

    fraction: random fraction of points held out per scan (seeded by ``seed`` and the frame index); with
        fraction 0 and every_kth_beam 0 nothing is held out (scoring against dense ground truth only).
    every_kth_beam: additionally hold out every k-th beam (ring index % k == 0); 0 turns it off. Whole
        beams held out test interpolation *between* scan lines, which a random split does not.
    """

    fraction: float = 0.2
    every_kth_beam: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction < 1.0:
            raise ValueError(f"held-out fraction must be in [0, 1), got {self.fraction}")
        if self.every_kth_beam < 0 or self.every_kth_beam == 1:
            raise ValueError(f"every_kth_beam must be 0 (off) or >= 2, got {self.every_kth_beam}")


def holdout_mask(n_points: int, config: HoldoutConfig, frame_index: int, ring: np.ndarray | None = None) -> np.ndarray:
    """(n_points,) bool, True = held out. Deterministic for (config.seed, frame_index).

    ring: (n_points,) beam index per point, needed when ``config.every_kth_beam`` is set.
    """
    rng = np.random.default_rng((config.seed, frame_index))
    held_out = rng.random(n_points) < config.fraction
    if config.every_kth_beam:
        if ring is None:
            raise ValueError("every_kth_beam needs a ring (beam index) per point; the cloud has no 'ring' field")
        held_out |= np.asarray(ring).astype(np.int64) % config.every_kth_beam == 0
    return held_out


@dataclass(frozen=True)
class PixelSamples:
    """Sparse depth samples: (M,) pixel rows and cols and depth in metres along the optical axis."""

    row: np.ndarray
    col: np.ndarray
    depth: np.ndarray

    def __len__(self) -> int:
        return int(self.depth.shape[0])

    def select(self, keep: np.ndarray) -> PixelSamples:
        return PixelSamples(self.row[keep], self.col[keep], self.depth[keep])

    def values_of(self, image: np.ndarray) -> np.ndarray:
        """(M,) float64 values of an (H, W) image at these pixels."""
        return np.asarray(image, dtype=np.float64)[self.row, self.col]


def drop_shared_pixels(held_out: PixelSamples, fitting: PixelSamples, width: int) -> PixelSamples:
    """Held-out samples whose pixel no fitting sample occupies (a shared pixel would leak the answer)."""
    fitting_pixels = fitting.row.astype(np.int64) * width + fitting.col
    held_pixels = held_out.row.astype(np.int64) * width + held_out.col
    return held_out.select(~np.isin(held_pixels, fitting_pixels))


def median_scale(pred_depth_at_fit: np.ndarray, lidar_depth_at_fit: np.ndarray) -> float:
    """Median-scaling baseline: the s with median(lidar) = s · median(pred), over finite positive pairs.

    pred_depth_at_fit: (M,) a depth known up to scale (for relative inverse depth: 1 / prediction);
    lidar_depth_at_fit: (M,) metres. NaN when no usable pair exists.
    """
    pred = np.asarray(pred_depth_at_fit, dtype=np.float64)
    lidar = np.asarray(lidar_depth_at_fit, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(pred) & (pred > 0) & np.isfinite(lidar) & (lidar > 0)
    if not usable.any():
        return float("nan")
    return float(np.median(lidar[usable]) / np.median(pred[usable]))


@dataclass(frozen=True)
class PointScores:
    """Metrics of one method on one set of held-out points.

    metrics: the KITTI set (None with fewer than MIN_POINTS_FOR_METRICS scored points);
    n_scored: points with a finite prediction; coverage: n_scored / points with ground truth in range.
    """

    metrics: dict[str, float] | None
    n_scored: int
    coverage: float


def score_points(pred: np.ndarray, gt: np.ndarray, min_depth: float = 1e-3, max_depth: float = 80.0) -> PointScores:
    """Score predicted depth (M,) against LiDAR depth (M,) in metres (KITTI protocol).

    Ground truth outside (min_depth, max_depth) is ignored; predictions are clamped to [min_depth, max_depth];
    points where the method gives no depth (NaN) are not scored but lower ``coverage``.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        in_range = np.isfinite(gt) & (gt > min_depth) & (gt < max_depth)
    scored = in_range & np.isfinite(pred)
    n_in_range, n_scored = int(in_range.sum()), int(scored.sum())
    coverage = n_scored / n_in_range if n_in_range else 0.0
    if n_scored < MIN_POINTS_FOR_METRICS:
        return PointScores(None, n_scored, coverage)
    metrics = depth_metrics(np.clip(pred[scored], min_depth, max_depth), gt[scored])
    return PointScores(metrics, n_scored, coverage)


def bin_label(low: float, high: float) -> str:
    return f"{low:g}-{high:g} m"


def score_by_range(pred: np.ndarray, gt: np.ndarray, bins: tuple[tuple[float, float], ...] = RANGE_BINS,
                   min_depth: float = 1e-3, max_depth: float = 80.0) -> dict[str, PointScores]:
    """``score_points`` restricted to ground truth in each [low, high) bin, keyed by ``bin_label``.

    Predictions are still clamped to the global [min_depth, max_depth], not to the bin.
    """
    gt = np.asarray(gt, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return {bin_label(low, high): score_points(pred, np.where((gt >= low) & (gt < high), gt, np.nan),
                                                   min_depth, max_depth)
                for low, high in bins}


def mean_metrics(per_frame: list[dict[str, float] | None]) -> dict[str, float] | None:
    """Mean over frames of per-frame metrics (the KITTI table convention); frames without metrics skipped."""
    scored = [metrics for metrics in per_frame if metrics is not None]
    if not scored:
        return None
    return {name: float(np.mean([metrics[name] for metrics in scored])) for name in METRIC_NAMES}


def consecutive_jitter(values: np.ndarray) -> float:
    """Root mean square of frame-to-frame differences of a per-frame series (pairs with a NaN skipped).

    The typical change from one frame to the next: a steady estimate gives 0. NaN when fewer than two
    consecutive finite differences exist.
    """
    differences = np.diff(np.asarray(values, dtype=np.float64))
    differences = differences[np.isfinite(differences)]
    return float(np.sqrt(np.mean(differences**2))) if differences.size >= 2 else float("nan")


def static_pixel_flicker(previous_rgb: np.ndarray, rgb: np.ndarray, previous_depth: np.ndarray, depth: np.ndarray,
                         change_threshold: int = 2, min_static_fraction: float = 0.9) -> float | None:
    """Median |Δdepth| / depth between two frames over the pixels whose image did not change.

    A pixel is static when every colour channel changed by at most ``change_threshold`` (uint8 levels).
    Only frame pairs where at least ``min_static_fraction`` of the pixels are static count (the camera
    stood still): in a moving view, texture-less regions look unchanged while their depth truly changes.
    rgb: (H, W, 3) uint8; depth: (H, W) metres, NaN unknown. Returns None when the pair does not count.
    """
    if previous_rgb.shape != rgb.shape or previous_depth.shape != depth.shape:
        return None
    change = np.abs(rgb.astype(np.int16) - previous_rgb.astype(np.int16)).max(axis=2)
    static = change <= change_threshold
    if static.mean() < min_static_fraction:
        return None
    with np.errstate(invalid="ignore"):
        both = static & np.isfinite(depth) & np.isfinite(previous_depth) & (previous_depth > 0)
    if not both.any():
        return None
    relative_change = np.abs(depth[both] - previous_depth[both]) / previous_depth[both]
    return float(np.median(relative_change))
