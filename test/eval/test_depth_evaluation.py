"""Scoring primitives of the bag evaluator against hand-computed values."""

import numpy as np
import pytest

from dpt_ros.eval.holdout import (
    HoldoutConfig,
    PixelSamples,
    consecutive_jitter,
    drop_shared_pixels,
    holdout_mask,
    mean_metrics,
    median_scale,
    score_by_range,
    score_points,
    static_pixel_flicker,
)


def test_holdout_is_seeded_per_frame_and_holds_out_the_fraction_and_beams():
    config = HoldoutConfig(fraction=0.25, seed=7)
    first = holdout_mask(20_000, config, frame_index=3)
    assert np.array_equal(first, holdout_mask(20_000, config, frame_index=3))
    assert not np.array_equal(first, holdout_mask(20_000, config, frame_index=4))
    assert first.mean() == pytest.approx(0.25, abs=0.01)

    ring = np.arange(20_000) % 32
    beams = holdout_mask(20_000, HoldoutConfig(fraction=0.0, every_kth_beam=4), 0, ring=ring)
    assert np.array_equal(beams, ring % 4 == 0)
    with pytest.raises(ValueError, match="ring"):
        holdout_mask(10, HoldoutConfig(fraction=0.1, every_kth_beam=4), 0)
    assert not holdout_mask(100, HoldoutConfig(fraction=0.0), 0).any()  # dense ground truth only


def test_shared_pixels_are_dropped_from_the_held_out_set():
    fitting = PixelSamples(np.array([0, 1, 2]), np.array([0, 1, 2]), np.array([5.0, 6.0, 7.0]))
    held = PixelSamples(np.array([0, 1, 3]), np.array([0, 2, 3]), np.array([5.0, 9.0, 8.0]))
    kept = drop_shared_pixels(held, fitting, width=10)
    assert list(zip(kept.row, kept.col)) == [(1, 2), (3, 3)]


def test_median_scale_ignores_invalid_pairs():
    assert median_scale(np.array([1.0, 2.0, 3.0, np.nan, -1.0]), np.array([2.0, 4.0, 6.0, 1.0, 1.0])) == 2.0
    assert np.isnan(median_scale(np.array([np.nan]), np.array([1.0])))


def test_point_scores_by_hand():
    gt = np.array([10.0, 20.0, 40.0, 5.0, 8.0, 5.0, 100.0, np.nan])
    pred = np.array([11.0, 18.0, 40.0, 5.0, 8.0, np.nan, 50.0, 3.0])
    scores = score_points(pred, gt)  # 100 m and NaN ground truth are out of range; one NaN prediction
    assert scores.n_scored == 5 and scores.coverage == pytest.approx(5 / 6)
    assert scores.metrics["abs_rel"] == pytest.approx((0.1 + 0.1) / 5)
    assert scores.metrics["rmse"] == pytest.approx(np.sqrt((1 + 4) / 5))
    assert scores.metrics["delta1"] == 1.0
    assert score_points(pred[:3], gt[:3]).metrics is None  # too few points to mean anything


def test_range_bins_split_ground_truth_but_clamp_globally():
    gt = np.array([5.0] * 5 + [30.0] * 5)
    pred = np.array([45.0] * 5 + [33.0] * 5)
    bins = score_by_range(pred, gt)
    assert bins["0-10 m"].metrics["abs_rel"] == pytest.approx(8.0)  # not clamped to the bin's 10 m
    assert bins["20-40 m"].metrics["abs_rel"] == pytest.approx(0.1)
    assert bins["10-20 m"].metrics is None and bins["40-80 m"].n_scored == 0


def test_mean_metrics_and_jitter():
    assert mean_metrics([None]) is None
    a = {name: 1.0 for name in ("delta1", "delta2", "delta3", "abs_rel", "sq_rel", "rmse", "rmse_log", "silog",
                                "log10")}
    b = {name: 3.0 for name in a}
    assert mean_metrics([a, None, b])["rmse"] == 2.0
    assert consecutive_jitter(np.array([1.0, 1.0, 1.0, 1.0])) == 0.0
    assert consecutive_jitter(np.array([0.0, 1.0, 0.0, 1.0])) == pytest.approx(1.0)  # diffs ±1
    assert np.isnan(consecutive_jitter(np.array([1.0, np.nan, 2.0])))


def test_flicker_counts_only_pairs_where_the_view_stood_still():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    depth = np.full((20, 30), 10.0)
    wobble = depth.copy()
    wobble[:11] = 10.5  # 11 of 20 rows moved 5 %: the median pixel moved 5 %
    assert static_pixel_flicker(rgb, rgb, depth, wobble) == pytest.approx(0.05)
    moved = np.roll(rgb, 3, axis=1)
    assert static_pixel_flicker(rgb, moved, depth, wobble) is None
