"""Align a relative depth prediction to sparse metric depth (LiDAR): scale and shift, robustly.

Relative DPT/MiDaS models predict inverse depth up to an unknown affine map, so we fit (s, t) with
    s * pred + t ~= 1 / z_lidar                       (`fit_scale_shift`, space "inverse_depth")
and metric models predict metres up to a small scale error, so we fit s with
    s * pred ~= z_lidar                               (`fit_scale`, space "depth").

Both are linear in the unknowns theta once written as a *relative* residual with target 1:
    inverse_depth: e = z * (s * pred + t) - 1 = z / z_pred - 1,   row a = (z * pred, z)
    depth:         e = s * pred / z - 1       = z_pred / z - 1,   row a = (pred / z,)
i.e. e = a . theta - 1 is the relative depth error of the LiDAR point against the aligned prediction
(to first order), the quantity the inlier threshold and the abs-rel metric speak about.

- method "lstsq": the closed-form least squares of MiDaS/DPT's `compute_scale_and_shift`, i.e. minimise
  sum(w * (s * pred + t - 1/z)^2) over the valid (masked) points, which is the relative form with
  per-point weights 1/z^2 (and sum(w * (s * pred - z)^2), weights z^2, for `fit_scale`).
- method "robust": RANSAC over minimal samples (2 points for scale+shift, 1 for scale) scored with a
  truncated quadratic (MSAC) on a random subset, then iteratively reweighted least squares on all points
  with Huber weights on the relative residual, points beyond `inlier_threshold` weighted 0. This survives
  LiDAR points that leak through object edges, see past occluders or hit moving objects.

Failures (too few points, all LiDAR points at one depth, non-positive scale, too few inliers,
ill-conditioned system) never raise: the result has `success=False` and a `reason`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

INVERSE_DEPTH = "inverse_depth"
DEPTH = "depth"
METHODS = ("robust", "lstsq")

# 1.4826 * MAD estimates a Gaussian's sigma; 1.345 sigma is Huber's 95 %-efficiency threshold.
_MAD_TO_SIGMA = 1.4826
_HUBER_K = 1.345
# Huber threshold floor (relative depth error) so noise-free data cannot drive the weights to a division by 0.
_MIN_HUBER_DELTA = 1e-4
# IRLS stops once an iteration moves no point's relative residual (~ its aligned depth) by more than this;
# 1e-4 = 0.01 % of depth, far below any LiDAR or prediction noise.
_IRLS_TOLERANCE = 1e-4


@dataclass(frozen=True)
class AlignmentConfig:
    """Tuning of `fit_scale_shift` / `fit_scale`. Thresholds on residuals are relative depth errors."""

    min_points: int = 20  # fewer valid LiDAR samples (or inliers) than this -> no fit
    min_inlier_ratio: float = 0.3  # fraction of the valid samples that must agree with the fit
    inlier_threshold: float = 0.1  # |z_lidar / z_pred - 1| above this is an outlier
    min_depth_spread: float = 0.1  # scale+shift needs depth(95th pct) / depth(5th pct) >= 1 + this
    min_conditioning: float = 1e-6  # 1 - normalised correlation of the two design columns (0 = singular)
    ransac_hypotheses: int = 128  # minimal-sample hypotheses, drawn at once (vectorised)
    ransac_score_samples: int = 2000  # hypotheses are scored on at most this many random points
    irls_iterations: int = 10
    seed: int = 0  # RANSAC sampling is deterministic for a given seed

    def __post_init__(self) -> None:
        if self.min_points < 2:
            raise ValueError(f"min_points must be >= 2, got {self.min_points}")
        if not 0.0 <= self.min_inlier_ratio <= 1.0:
            raise ValueError(f"min_inlier_ratio must be in [0, 1], got {self.min_inlier_ratio}")
        if self.inlier_threshold <= 0:
            raise ValueError(f"inlier_threshold must be > 0, got {self.inlier_threshold}")
        if self.min_depth_spread < 0 or self.min_conditioning < 0:
            raise ValueError("min_depth_spread and min_conditioning must be >= 0")
        if self.ransac_hypotheses < 1 or self.ransac_score_samples < 2 or self.irls_iterations < 0:
            raise ValueError("ransac_hypotheses >= 1, ransac_score_samples >= 2, irls_iterations >= 0 required")


@dataclass(frozen=True)
class AlignmentResult:
    """Outcome of one fit. `scale`/`shift` are NaN when no fit could be attempted.

    space:        "inverse_depth" (1/z = scale * pred + shift) or "depth" (z = scale * pred, shift 0).
    n_points:     valid LiDAR samples used (finite, positive depth, finite prediction, inside the mask).
    inlier_mask:  bool, same shape as the sparse depth given (True = inlier); None before any fit.
    rms_inverse_residual: RMS of 1/z_pred - 1/z_lidar over the inliers, 1/m.
    median_abs_rel:       median of |z_pred - z_lidar| / z_lidar over the inliers.
    pred_support: (5th, 95th) percentile of the prediction over the inliers, the range the fit is backed by.
    """

    scale: float
    shift: float
    space: str
    method: str
    n_points: int
    n_inliers: int
    inlier_ratio: float
    rms_inverse_residual: float
    median_abs_rel: float
    pred_support: tuple[float, float]
    inlier_mask: np.ndarray | None = field(repr=False, compare=False)
    success: bool
    reason: str

    @property
    def usable(self) -> bool:
        """Whether `to_metric` may use this fit."""
        return self.success


def fit_scale_shift(
    pred_inverse_depth: np.ndarray,
    sparse_depth: np.ndarray,
    method: str = "robust",
    mask: np.ndarray | None = None,
    config: AlignmentConfig = AlignmentConfig(),
) -> AlignmentResult:
    """Fit s, t with s * pred + t ~= 1 / sparse_depth for a relative (inverse-depth) prediction.

    pred_inverse_depth: (H, W) network output (arbitrary units, larger = nearer).
    sparse_depth:       (H, W) metres along the optical axis, NaN (or <= 0) where there is no LiDAR point,
                        e.g. from `project_lidar`.
    mask:               optional (H, W) bool, False excludes pixels (sky, ego vehicle, ...).
    Returns an AlignmentResult whose inlier_mask is (H, W).

    Example:
        >>> fit = fit_scale_shift(pred, project_lidar(cloud, T_cam_lidar, K, (W, H)))
        >>> depth_m = to_metric(pred, fit, max_depth=80.0) if fit.success else None
    """
    return _fit_image(pred_inverse_depth, sparse_depth, INVERSE_DEPTH, method, mask, config)


def fit_scale(
    pred_depth: np.ndarray,
    sparse_depth: np.ndarray,
    method: str = "robust",
    mask: np.ndarray | None = None,
    config: AlignmentConfig = AlignmentConfig(),
) -> AlignmentResult:
    """Scale-only refinement s * pred ~= sparse_depth for a metric prediction (metres, e.g. dpt_hybrid_kitti).

    Same arguments and result as `fit_scale_shift`; shift is 0 and the depth-spread check does not apply
    (a single plane face-on still fixes a scale).
    """
    return _fit_image(pred_depth, sparse_depth, DEPTH, method, mask, config)


def fit_samples(
    pred_values: np.ndarray,
    lidar_depth: np.ndarray,
    space: str = INVERSE_DEPTH,
    method: str = "robust",
    weights: np.ndarray | None = None,
    config: AlignmentConfig = AlignmentConfig(),
) -> AlignmentResult:
    """The fit on per-point samples: pred_values (N,) at each LiDAR point's pixel, lidar_depth (N,) metres.

    Useful when points are held out for evaluation. weights (N,) >= 0 scale each point's influence
    (0 excludes it). Samples with non-finite values or depth <= 0 are ignored. inlier_mask is (N,).
    """
    if space not in (INVERSE_DEPTH, DEPTH):
        raise ValueError(f"space must be {INVERSE_DEPTH!r} or {DEPTH!r}, got {space!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    x = np.asarray(pred_values, dtype=np.float64).ravel()
    z = np.asarray(lidar_depth, dtype=np.float64).ravel()
    if x.shape != z.shape:
        raise ValueError(f"pred_values and lidar_depth must match, got {x.shape} and {z.shape}")
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != x.shape:
        raise ValueError(f"weights must have shape {x.shape}, got {w.shape}")
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(x) & np.isfinite(z) & (z > 0) & np.isfinite(w) & (w > 0)
    index = np.flatnonzero(valid)
    result = _fit_valid(x[index], z[index], w[index], space, method, config)
    full_mask = np.zeros(x.shape, dtype=bool)
    if result.inlier_mask is not None:
        full_mask[index] = result.inlier_mask
    return replace(result, inlier_mask=full_mask if result.inlier_mask is not None else None)


def to_metric(pred: np.ndarray, fit: object, max_depth: float = np.inf) -> np.ndarray:
    """Metric depth (same shape as pred, float32 metres) from a prediction and a usable fit.

    fit: an AlignmentResult or a filtered fit (anything with scale, shift, space and usable).
    Inverse-depth fits give 1 / (scale * pred + shift); depth fits give scale * pred. Values that are
    non-positive, non-finite or beyond max_depth become NaN (never 0, never clipped).
    Raises ValueError for a fit that is not usable (failed, or a stale/empty filter state).
    """
    if not getattr(fit, "usable", False):
        raise ValueError(f"cannot make metric depth from an unusable fit: {getattr(fit, 'reason', fit)!r}")
    scale, shift, space = float(fit.scale), float(fit.shift), fit.space
    if not (np.isfinite(scale) and np.isfinite(shift) and scale > 0):
        raise ValueError(f"fit has invalid scale {scale} / shift {shift}")
    if max_depth <= 0:
        raise ValueError(f"max_depth must be > 0, got {max_depth}")
    values = np.asarray(pred, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if space == INVERSE_DEPTH:
            inverse = values * np.float32(scale) + np.float32(shift)
            depth = np.float32(1.0) / inverse
            # positive, within the cap and finite (an infinite prediction would give depth 0); NaN compares False
            keep = (inverse > np.float32(1.0 / max_depth)) & np.isfinite(inverse)
        elif space == DEPTH:
            depth = values * np.float32(scale)
            keep = (depth > 0) & (depth <= np.float32(max_depth)) & np.isfinite(depth)
        else:
            raise ValueError(f"unknown fit space {space!r}")
    return np.where(keep, depth, np.float32(np.nan)).astype(np.float32, copy=False)


def _fit_image(
    pred: np.ndarray, sparse_depth: np.ndarray, space: str, method: str, mask: np.ndarray | None, config
) -> AlignmentResult:
    pred = np.asarray(pred)
    sparse_depth = np.asarray(sparse_depth)
    if pred.shape != sparse_depth.shape or pred.ndim != 2:
        raise ValueError(f"pred and sparse_depth must be (H, W) of one shape, got {pred.shape}, {sparse_depth.shape}")
    with np.errstate(invalid="ignore"):
        candidate = sparse_depth > 0  # NaN compares False, so empty pixels drop out here
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != pred.shape:
            raise ValueError(f"mask must have shape {pred.shape}, got {mask.shape}")
        candidate &= mask
    index = np.flatnonzero(candidate)
    result = fit_samples(pred.ravel()[index], sparse_depth.ravel()[index], space, method, None, config)
    if result.inlier_mask is None:
        return result
    image_mask = np.zeros(pred.shape, dtype=bool)
    image_mask.ravel()[index[result.inlier_mask]] = True
    return replace(result, inlier_mask=image_mask)


def _fit_valid(x: np.ndarray, z: np.ndarray, w: np.ndarray, space: str, method: str, config) -> AlignmentResult:
    """The fit on already-valid samples (finite, z > 0, w > 0)."""
    n_points = int(x.size)

    def failure(reason: str) -> AlignmentResult:
        return AlignmentResult(
            scale=float("nan"), shift=float("nan"), space=space, method=method, n_points=n_points,
            n_inliers=0, inlier_ratio=0.0, rms_inverse_residual=float("nan"), median_abs_rel=float("nan"),
            pred_support=(float("nan"), float("nan")), inlier_mask=None, success=False, reason=reason,
        )  # fmt: skip

    if n_points < config.min_points:
        return failure(f"too few LiDAR points: {n_points} < {config.min_points}")
    if space == INVERSE_DEPTH:
        near, far = np.percentile(z, (5.0, 95.0))
        if far < near * (1.0 + config.min_depth_spread):
            return failure(
                f"degenerate geometry: LiDAR depths span only {far / near:.3f}x (5th-95th percentile), "
                f"need {1.0 + config.min_depth_spread:.3f}x to separate scale from shift"
            )
        columns = np.stack((z * x, z))  # (2, N): the rows a of e = a . theta - 1, stored by column
        lstsq_weights = w / (z * z)  # relative form of sum(w * (s*x + t - 1/z)^2)
    else:
        columns = (x / z)[None, :]
        lstsq_weights = w * z * z  # relative form of sum(w * (s*x - z)^2)

    if method == "lstsq":
        theta = _solve_weighted(columns, lstsq_weights)
    else:
        hypothesis = _ransac(columns, config)
        if hypothesis is None:
            return failure("no RANSAC hypothesis with positive scale")
        theta = _irls(columns, w, *hypothesis, config)
    if theta is None or not np.all(np.isfinite(theta)):
        return failure("singular normal equations")

    residual = theta @ columns - 1.0
    inliers = np.abs(residual) <= config.inlier_threshold
    scale = float(theta[0])
    shift = float(theta[1]) if space == INVERSE_DEPTH else 0.0
    n_inliers = int(np.count_nonzero(inliers))
    inlier_ratio = n_inliers / n_points
    x_in, z_in = x[inliers], z[inliers]
    z_pred = 1.0 / (scale * x_in + shift) if space == INVERSE_DEPTH else scale * x_in
    support = tuple(float(p) for p in np.percentile(x_in, (5.0, 95.0))) if n_inliers else (np.nan, np.nan)

    reason = _quality_problem(columns, inliers, scale, n_inliers, inlier_ratio, config)
    return AlignmentResult(
        scale=scale,
        shift=shift,
        space=space,
        method=method,
        n_points=n_points,
        n_inliers=n_inliers,
        inlier_ratio=float(inlier_ratio),
        rms_inverse_residual=float(np.sqrt(np.mean((1.0 / z_pred - 1.0 / z_in) ** 2))) if n_inliers else np.nan,
        median_abs_rel=float(np.median(np.abs(z_pred - z_in) / z_in)) if n_inliers else np.nan,
        pred_support=support,
        inlier_mask=inliers,
        success=reason == "",
        reason=reason or "ok",
    )


def _quality_problem(
    columns: np.ndarray, inliers: np.ndarray, scale: float, n_inliers: int, inlier_ratio: float, config
) -> str:
    """Why a computed fit must not be used, or "" when it passes every check."""
    if not scale > 0:
        return f"non-positive scale {scale:.6g}"
    if n_inliers < config.min_points:
        return f"too few inliers: {n_inliers} < {config.min_points}"
    if inlier_ratio < config.min_inlier_ratio:
        return f"inlier ratio {inlier_ratio:.3f} < {config.min_inlier_ratio}"
    if columns.shape[0] == 2:
        used = columns[:, inliers]
        gram = used @ used.T
        conditioning = 1.0 - gram[0, 1] ** 2 / (gram[0, 0] * gram[1, 1])
        if not conditioning >= config.min_conditioning:
            return f"ill-conditioned: prediction barely varies over the inliers (conditioning {conditioning:.2e})"
    return ""


def _solve_weighted(columns: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """argmin_theta sum(weights * (theta @ columns - 1)^2) via the p x p normal equations (p = 1 or 2)."""
    weighted = columns * weights
    normal = weighted @ columns.T
    rhs = weighted.sum(axis=1)
    if columns.shape[0] == 1:
        return rhs / normal[0] if normal[0, 0] > 0 else None
    determinant = normal[0, 0] * normal[1, 1] - normal[0, 1] * normal[1, 0]
    if not abs(determinant) > 1e-12 * normal[0, 0] * normal[1, 1]:
        return None
    return np.array(
        (
            (normal[1, 1] * rhs[0] - normal[0, 1] * rhs[1]) / determinant,
            (normal[0, 0] * rhs[1] - normal[1, 0] * rhs[0]) / determinant,
        )
    )


def _ransac(columns: np.ndarray, config: AlignmentConfig) -> tuple[np.ndarray, float] | None:
    """Best minimal-sample hypothesis by MSAC cost, and a robust sigma of its relative residuals.

    All hypotheses are solved and scored at once, on a random subset of at most ransac_score_samples points.
    """
    rng = np.random.default_rng(config.seed)
    n_params, n_points = columns.shape
    if n_points > config.ransac_score_samples:
        score_columns = columns[:, rng.integers(0, n_points, config.ransac_score_samples)]
    else:
        score_columns = columns
    picks = rng.integers(0, n_points, size=(n_params, config.ransac_hypotheses))
    with np.errstate(divide="ignore", invalid="ignore"):
        if n_params == 1:
            hypotheses = (1.0 / columns[0, picks[0]])[:, None]
        else:
            # each hypothesis solves [a_0; a_1] theta = (1, 1) by Cramer's rule
            a, b = columns[:, picks[0]], columns[:, picks[1]]
            determinant = a[0] * b[1] - a[1] * b[0]
            hypotheses = np.stack(((b[1] - a[1]) / determinant, (a[0] - b[0]) / determinant), axis=1)
    plausible = np.all(np.isfinite(hypotheses), axis=1) & (hypotheses[:, 0] > 0)
    if not np.any(plausible):
        return None
    hypotheses = hypotheses[plausible]
    residual = np.abs(hypotheses @ score_columns - 1.0)  # (K, M)
    truncated = np.minimum(residual, config.inlier_threshold)
    cost = np.einsum("km,km->k", truncated, truncated)  # sum(min(e, tau)^2) per hypothesis
    best = int(np.argmin(cost))
    best_residual = residual[best]
    agreeing = best_residual[best_residual <= config.inlier_threshold]
    sigma = _MAD_TO_SIGMA * float(np.median(agreeing)) if agreeing.size else config.inlier_threshold
    return hypotheses[best], sigma


def _irls(
    columns: np.ndarray, weights: np.ndarray, theta: np.ndarray, sigma: float, config: AlignmentConfig
) -> np.ndarray | None:
    """Huber-weighted least squares on the relative residual; points beyond the inlier threshold get weight 0.

    The Huber threshold is fixed from the RANSAC inliers' robust sigma (no median per iteration).
    """
    delta = max(_HUBER_K * sigma, _MIN_HUBER_DELTA)
    for _ in range(config.irls_iterations):
        residual = np.abs(theta @ columns - 1.0)
        huber = delta / np.maximum(residual, delta)  # 1 inside delta, delta/|e| outside
        huber[residual > config.inlier_threshold] = 0.0
        updated = _solve_weighted(columns, weights * huber)
        if updated is None:
            return theta
        converged = np.abs((updated - theta) @ columns).max() <= _IRLS_TOLERANCE
        theta = updated
        if converged:
            break
    return theta
