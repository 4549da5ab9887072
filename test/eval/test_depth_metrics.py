"""KITTI metrics, crops, depth range and alignment against hand-computed values."""

import math

import numpy as np
import pytest

from dpt_ros.eval.depth_metrics import (
    EvalConfig,
    MetricAggregator,
    align_least_squares_inverse,
    align_median,
    crop_mask,
    depth_metrics,
    evaluate_image,
    evaluation_mask,
)

# ratios pred/gt = 1.2, 1.5, 1.9, 3.0 on ground truth 1, 2, 2, 2 metres
PRED = np.array([1.2, 3.0, 3.8, 6.0])
GT = np.array([1.0, 2.0, 2.0, 2.0])


def test_each_metric_equals_hand_computed_value():
    metrics = depth_metrics(PRED, GT)
    assert metrics["delta1"] == 0.25  # only 1.2 < 1.25
    assert metrics["delta2"] == 0.5  # 1.2, 1.5 < 1.5625
    assert metrics["delta3"] == 0.75  # 1.2, 1.5, 1.9 < 1.953125
    assert metrics["abs_rel"] == pytest.approx((0.2 / 1 + 1.0 / 2 + 1.8 / 2 + 4.0 / 2) / 4)  # 0.9
    assert metrics["sq_rel"] == pytest.approx((0.04 / 1 + 1.0 / 2 + 3.24 / 2 + 16.0 / 2) / 4)  # 2.54
    assert metrics["rmse"] == pytest.approx(math.sqrt((0.04 + 1.0 + 3.24 + 16.0) / 4))
    logs = [math.log(1.2), math.log(1.5), math.log(1.9), math.log(3.0)]
    mean_sq = sum(e * e for e in logs) / 4
    mean = sum(logs) / 4
    assert metrics["rmse_log"] == pytest.approx(math.sqrt(mean_sq))
    assert metrics["silog"] == pytest.approx(100 * math.sqrt(mean_sq - mean * mean))
    assert metrics["log10"] == pytest.approx(sum(math.log10(r) for r in (1.2, 1.5, 1.9, 3.0)) / 4)


def test_delta_is_symmetric_and_silog_ignores_global_scale():
    under = depth_metrics(np.array([0.5]), np.array([0.6]))  # ratio 1.2 from below
    assert under["delta1"] == 1.0
    doubled = depth_metrics(2 * GT, GT)
    assert doubled["silog"] == pytest.approx(0.0, abs=1e-6)
    assert doubled["rmse_log"] == pytest.approx(math.log(2))
    assert doubled["delta3"] == 0.0  # 2 > 1.953


def test_crops_on_kitti_size_and_small_image():
    garg = crop_mask(375, 1242, "garg")
    rows, cols = np.nonzero(garg)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (153, 370, 44, 1196)
    eigen = crop_mask(375, 1242, "eigen")
    rows, cols = np.nonzero(eigen)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (124, 341, 44, 1196)
    small = crop_mask(100, 1000, "garg")
    assert small.sum() == (99 - 40) * (964 - 35)
    assert crop_mask(4, 5, "none").all()
    with pytest.raises(ValueError, match="unknown crop"):
        crop_mask(4, 5, "center")


def test_depth_range_is_strict_and_drops_invalid():
    gt = np.array([[0.0, 5e-4, 1e-3, 0.5, 79.9, 80.0, 85.0, np.nan]])
    mask = evaluation_mask(gt, EvalConfig(crop="none"))
    assert mask.tolist() == [[False, False, False, True, True, False, False, False]]
    narrow = evaluation_mask(gt, EvalConfig(crop="none", min_depth=0.6, max_depth=85.0))
    assert narrow.tolist() == [[False, False, False, False, True, True, False, False]]


def test_evaluate_image_clamps_prediction_to_range_and_uses_crop():
    gt = np.zeros((10, 10))
    gt[5, 5] = 50.0  # inside the Garg crop of a 10x10 image (rows 4..8, cols 0..8)
    gt[0, 0] = 10.0  # outside the Garg crop: must be ignored
    pred = np.full((10, 10), 100.0)  # clamped to 80 m
    metrics = evaluate_image(pred, gt, EvalConfig(crop="garg"))
    assert metrics["abs_rel"] == pytest.approx(30.0 / 50.0)
    no_crop = evaluate_image(pred, gt, EvalConfig(crop="none"))
    assert no_crop["abs_rel"] == pytest.approx((30.0 / 50.0 + 70.0 / 10.0) / 2)
    with pytest.raises(ValueError, match="shape"):
        evaluate_image(pred[:5], gt)


def test_least_squares_inverse_alignment_hand_values():
    pred_inverse = np.array([[0.0, 1.0, 2.0]])
    gt = 1.0 / np.array([[1.0, 2.0, 4.0]])  # target inverse depth 1, 2, 4
    # normal equations: n=3, sum x=3, sum y=7, sum xx=5, sum xy=10 -> scale 9/6 = 1.5, shift (7-4.5)/3
    aligned = align_least_squares_inverse(pred_inverse, gt, np.ones((1, 3), dtype=bool), max_depth=80.0)
    np.testing.assert_allclose(1.0 / aligned, [[2.5 / 3, 1.5 + 2.5 / 3, 3.0 + 2.5 / 3]], rtol=1e-9)
    with pytest.raises(ValueError, match="cannot fit"):
        align_least_squares_inverse(np.ones((1, 3)), gt, np.ones((1, 3), dtype=bool), max_depth=80.0)


def test_least_squares_inverse_alignment_recovers_metric_depth_and_caps():
    gt = np.array([[2.0, 4.0, 10.0, 20.0]])
    pred_inverse = (1.0 / gt - 0.01) / 3.0  # relative inverse depth: 1/gt = 3 * pred + 0.01
    aligned = align_least_squares_inverse(pred_inverse, gt, gt > 0, max_depth=80.0)
    np.testing.assert_allclose(aligned, gt, rtol=1e-9)
    metrics = evaluate_image(pred_inverse, gt, EvalConfig(crop="none", alignment="least_squares_inverse"))
    assert metrics["abs_rel"] == pytest.approx(0.0, abs=1e-9) and metrics["delta1"] == 1.0
    # a pixel the fit maps to negative inverse depth becomes max_depth, not a negative depth
    far = np.concatenate([pred_inverse, [[-1.0]]], axis=1)
    capped = align_least_squares_inverse(far, np.concatenate([gt, [[0.0]]], axis=1),
                                         np.array([[True] * 4 + [False]]), max_depth=80.0)
    assert capped[0, -1] == pytest.approx(80.0)


def test_median_scaling():
    gt = np.array([[2.0, 4.0, 6.0, 0.0]])
    pred = np.array([[0.1, 0.2, 0.3, 7.0]])
    aligned = align_median(pred, gt, gt > 0)
    np.testing.assert_allclose(aligned[0, :3], gt[0, :3])
    metrics = evaluate_image(pred, gt, EvalConfig(crop="none", alignment="median"))
    assert metrics["rmse"] == pytest.approx(0.0, abs=1e-9)


def test_aggregate_is_mean_over_images():
    aggregator = MetricAggregator()
    aggregator.add(depth_metrics(PRED, GT))
    aggregator.add(depth_metrics(GT, GT))
    mean = aggregator.mean()
    assert mean["abs_rel"] == pytest.approx(0.9 / 2)
    assert mean["delta1"] == pytest.approx((0.25 + 1.0) / 2)
    restored = MetricAggregator.from_state(aggregator.state() * 2)  # e.g. summed over two ranks
    assert restored.count == 4 and restored.mean()["abs_rel"] == pytest.approx(0.45)
    with pytest.raises(ValueError):
        MetricAggregator().mean()
