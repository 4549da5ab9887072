"""Scale/shift alignment on a ray-cast scene with known truth, gross outliers and edge leaks; degenerate cases."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from dpt_ros import AlignmentConfig, fit_scale, fit_scale_shift, to_metric
from dpt_ros.alignment.fit import fit_samples
from dpt_ros.sim.scene import render_depth, street_scene

K = np.array([[250.0, 0.0, 159.5], [0.0, 250.0, 119.5], [0.0, 0.0, 1.0]])
TRUE_SCALE, TRUE_SHIFT = 0.004, -0.02  # 1/z = s * pred + t


@pytest.fixture(scope="module")
def truth():
    depth = render_depth(street_scene(), K, (320, 240))  # 3.1 .. 30 m, every pixel hits something
    assert np.all(np.isfinite(depth))
    return depth


def lidar_samples(truth, rng, n=3000, outlier_fraction=0.2, leak_fraction=0.05):
    """Sparse depth: n exact samples, `outlier_fraction` replaced by uniform 1-40 m junk, plus edge-leak
    points (pixels near a depth edge that get the far side's depth, as a LiDAR seeing past an occluder)."""
    height, width = truth.shape
    sparse = np.full(truth.shape, np.nan)
    flat = sparse.ravel()
    picked = rng.choice(height * width, n, replace=False)
    flat[picked] = truth.ravel()[picked]
    outliers = picked[: int(outlier_fraction * n)]
    flat[outliers] = rng.uniform(1.0, 40.0, outliers.size)
    window = sliding_window_view(np.pad(truth, 3, mode="edge"), (7, 7))
    far, near = window.max(axis=(2, 3)).ravel(), window.min(axis=(2, 3)).ravel()
    edge_pixels = np.flatnonzero((far > 1.3 * near) & np.isnan(flat))
    leaks = rng.choice(edge_pixels, int(leak_fraction * n), replace=False)
    flat[leaks] = far[leaks]
    return sparse, outliers


def relative_prediction(truth, rng, noise=0.15):
    """pred = (1/depth - t) / s + noise: values ~13..90, noise sigma 0.15 (0.2 - 1 % of the value)."""
    return (1.0 / truth - TRUE_SHIFT) / TRUE_SCALE + rng.normal(0.0, noise, truth.shape)


def median_abs_rel(depth, truth):
    valid = np.isfinite(depth)
    assert valid.mean() > 0.99
    return float(np.median(np.abs(depth[valid] - truth[valid]) / truth[valid]))


def test_robust_fit_recovers_scale_shift_and_metric_depth_despite_outliers_and_edge_leaks(truth):
    rng = np.random.default_rng(0)
    pred = relative_prediction(truth, rng)
    sparse, outliers = lidar_samples(truth, rng)

    fit = fit_scale_shift(pred, sparse, method="robust")
    assert fit.success, fit.reason
    assert fit.scale == pytest.approx(TRUE_SCALE, rel=0.01)
    assert fit.shift == pytest.approx(TRUE_SHIFT, rel=0.01)
    assert median_abs_rel(to_metric(pred, fit), truth) < 0.01
    assert fit.n_points == np.count_nonzero(np.isfinite(sparse))
    assert 0.7 < fit.inlier_ratio < 0.9 and fit.n_inliers == np.count_nonzero(fit.inlier_mask)
    assert fit.median_abs_rel < 0.01 and 0 < fit.rms_inverse_residual < 0.01
    # every junk point that is clearly (> 15 %) wrong is classified as an outlier
    clearly_wrong = outliers[np.abs(sparse.ravel()[outliers] / truth.ravel()[outliers] - 1.0) > 0.15]
    assert not np.any(fit.inlier_mask.ravel()[clearly_wrong])


def test_plain_least_squares_fails_on_the_same_data(truth):
    rng = np.random.default_rng(0)
    pred = relative_prediction(truth, rng)
    sparse, _ = lidar_samples(truth, rng)

    fit = fit_scale_shift(pred, sparse, method="lstsq")
    assert abs(fit.scale / TRUE_SCALE - 1.0) > 0.1 and abs(fit.shift / TRUE_SHIFT - 1.0) > 0.5
    with np.errstate(divide="ignore"):
        inverse = fit.scale * pred + fit.shift
        forced_metric = np.where(inverse > 0, 1.0 / inverse, np.nan)
    assert np.nanmedian(np.abs(forced_metric - truth) / truth) > 0.05
    assert not fit.success and "inlier ratio" in fit.reason  # its own checks refuse it too


def test_lstsq_is_the_closed_form_midas_solution_on_clean_masked_data(truth):
    rng = np.random.default_rng(1)
    pred = relative_prediction(truth, rng)
    sparse, _ = lidar_samples(truth, rng, outlier_fraction=0.0, leak_fraction=0.0)
    mask = np.ones(truth.shape, dtype=bool)
    mask[:, :100] = False
    fit = fit_scale_shift(pred, sparse, method="lstsq", mask=mask)
    used = np.isfinite(sparse) & mask
    reference, *_ = np.linalg.lstsq(np.column_stack((pred[used], np.ones(used.sum()))), 1.0 / sparse[used])
    assert fit.success and fit.n_points == used.sum()
    np.testing.assert_allclose((fit.scale, fit.shift), reference, rtol=1e-9)
    assert not np.any(fit.inlier_mask[~mask])


def test_robust_fit_is_deterministic_for_a_seed(truth):
    rng = np.random.default_rng(2)
    pred = relative_prediction(truth, rng)
    sparse, _ = lidar_samples(truth, rng)
    first, second = fit_scale_shift(pred, sparse), fit_scale_shift(pred, sparse)
    assert (first.scale, first.shift, first.n_inliers) == (second.scale, second.shift, second.n_inliers)


def test_scale_only_refinement_for_metric_predictions(truth):
    rng = np.random.default_rng(4)
    pred_metres = truth / 1.07 * (1.0 + rng.normal(0.0, 0.005, truth.shape))  # metric model 7 % short
    sparse, _ = lidar_samples(truth, rng)
    fit = fit_scale(pred_metres, sparse)
    assert fit.success and fit.space == "depth" and fit.shift == 0.0
    assert fit.scale == pytest.approx(1.07, rel=0.005)
    assert median_abs_rel(to_metric(pred_metres, fit), truth) < 0.01
    assert abs(fit_scale(pred_metres, sparse, method="lstsq").scale / 1.07 - 1.0) > 0.02


def test_all_points_at_one_depth_is_reported_degenerate_not_raised(truth):
    rng = np.random.default_rng(5)
    wall = np.full((60, 80), 8.0)  # a wall face-on: scale and shift cannot be separated
    pred = (1.0 / wall - TRUE_SHIFT) / TRUE_SCALE + rng.normal(0.0, 0.15, wall.shape)
    fit = fit_scale_shift(pred, wall)
    assert not fit.success and "degenerate" in fit.reason
    assert np.isnan(fit.scale) and fit.inlier_mask is None and fit.n_points == wall.size
    with pytest.raises(ValueError, match="unusable fit"):
        to_metric(pred, fit)
    # a scale alone is still observable there
    assert fit_scale(1.0 / (TRUE_SCALE * pred + TRUE_SHIFT), wall).success


@pytest.mark.parametrize("n_points", [0, 1, 5, 19])
def test_too_few_points_is_reported(truth, n_points):
    sparse = np.full(truth.shape, np.nan)
    sparse.ravel()[np.linspace(0, truth.size - 1, n_points).astype(int)] = 5.0
    fit = fit_scale_shift(np.ones(truth.shape), sparse)
    assert not fit.success and fit.reason == f"too few LiDAR points: {n_points} < 20"
    assert fit.n_points == n_points and fit.n_inliers == 0


def test_constant_prediction_is_ill_conditioned(truth):
    sparse, _ = lidar_samples(truth, np.random.default_rng(6), outlier_fraction=0.0, leak_fraction=0.0)
    for method in ("robust", "lstsq"):
        fit = fit_scale_shift(np.full(truth.shape, 3.0), sparse, method=method)
        assert not fit.success


def test_inverted_prediction_gives_no_positive_scale_fit(truth):
    rng = np.random.default_rng(7)
    pred_wrong_sign = -relative_prediction(truth, rng)  # e.g. a depth map passed where inverse depth belongs
    sparse, _ = lidar_samples(truth, rng, outlier_fraction=0.0, leak_fraction=0.0)
    assert not fit_scale_shift(pred_wrong_sign, sparse).success
    assert not fit_scale_shift(pred_wrong_sign, sparse, method="lstsq").success


def test_per_point_fit_honours_weights_and_ignores_invalid_samples():
    rng = np.random.default_rng(8)
    depth = rng.uniform(2.0, 20.0, 400)
    pred = (1.0 / depth - TRUE_SHIFT) / TRUE_SCALE
    lidar = depth.copy()
    lidar[:150] *= 1.5  # heavy corruption that only zero weights remove
    lidar[150:160] = np.nan
    weights = np.r_[np.zeros(150), np.ones(250)]
    fit = fit_samples(pred, lidar, method="lstsq", weights=weights)
    assert fit.success and fit.n_points == 240 and fit.inlier_mask.shape == (400,)
    assert fit.scale == pytest.approx(TRUE_SCALE, rel=1e-9) and fit.shift == pytest.approx(TRUE_SHIFT, rel=1e-9)


def test_to_metric_maps_non_positive_and_beyond_cap_to_nan():
    fit = fit_samples(np.array([1.0, 2.0] * 20), np.array([1.0, 1.0 / 3.0] * 20), method="lstsq",
                      config=AlignmentConfig(min_depth_spread=0.0))  # 1/z = 2 pred - 1
    assert fit.scale == pytest.approx(2.0) and fit.shift == pytest.approx(-1.0)
    pred = np.array([1.0, 0.5, 0.25, 2.0, np.nan, np.inf], dtype=np.float32)
    np.testing.assert_allclose(to_metric(pred, fit), [1.0, np.nan, np.nan, 1.0 / 3.0, np.nan, np.nan], rtol=1e-5)
    np.testing.assert_allclose(to_metric(pred, fit, max_depth=0.5), [np.nan, np.nan, np.nan, 1.0 / 3.0, np.nan, np.nan],
                               rtol=1e-5)  # fmt: skip
    assert to_metric(pred.reshape(2, 3), fit).shape == (2, 3)

    depth_fit = fit_samples(np.array([1.0, 2.0] * 20), np.array([2.0, 4.0] * 20), space="depth", method="lstsq")
    assert depth_fit.scale == pytest.approx(2.0)  # z = 2 pred
    pred_metres = np.array([1.0, -1.0, 0.0, np.inf, 30.0], dtype=np.float32)
    np.testing.assert_allclose(to_metric(pred_metres, depth_fit, max_depth=50.0), [2.0, np.nan, np.nan, np.nan, np.nan])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: fit_scale_shift(np.ones((4, 4)), np.ones((4, 5))), "one shape"),
        (lambda: fit_scale_shift(np.ones((4, 4)), np.ones((4, 4)), method="ransac"), "method"),
        (lambda: fit_scale_shift(np.ones((4, 4)), np.ones((4, 4)), mask=np.ones((2, 2))), "mask"),
        (lambda: AlignmentConfig(min_points=1), "min_points"),
        (lambda: AlignmentConfig(inlier_threshold=0.0), "inlier_threshold"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
