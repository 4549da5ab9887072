"""Dense ground-truth scoring: zero for a perfect prediction, hand-computed values, crops and range bins."""

import numpy as np
import pytest

from dpt_ros.eval.depth_metrics import EvalConfig, crop_mask
from dpt_ros.eval.ground_truth import ground_truth_pixels, score_dense


def test_a_perfect_prediction_scores_zero_on_every_ground_truth_pixel():
    rng = np.random.default_rng(0)
    gt = rng.uniform(2.0, 70.0, (40, 60)).astype(np.float32)
    gt[rng.random(gt.shape) < 0.7] = np.nan  # sparse like KITTI's annotated depth
    index, truth = ground_truth_pixels(gt, EvalConfig(crop="none"))
    assert len(index) == np.isfinite(gt).sum()
    overall, by_range = score_dense(gt, index, truth, EvalConfig(crop="none"))
    assert overall.metrics["abs_rel"] == 0.0 and overall.metrics["rmse"] == 0.0 and overall.metrics["delta1"] == 1.0
    assert overall.coverage == 1.0 and overall.n_scored == len(index)
    assert sum(scores.n_scored for scores in by_range.values()) == len(index)


def test_scores_by_hand_with_crop_range_and_missing_predictions():
    gt = np.zeros((100, 100), np.float32)  # 0 = no ground truth
    gt[90, 50], gt[90, 60], gt[90, 70], gt[5, 50], gt[90, 80] = 10.0, 20.0, 40.0, 10.0, 90.0
    pred = np.full(gt.shape, 11.0, np.float32)
    pred[90, 60], pred[90, 70] = 20.0, np.nan
    config = EvalConfig(crop="garg")
    assert not crop_mask(100, 100, "garg")[5, 50]
    index, truth = ground_truth_pixels(gt, config)  # row 5 is outside the Garg crop, 90 m beyond the cap
    np.testing.assert_array_equal(np.sort(truth), [10.0, 20.0, 40.0])
    overall, by_range = score_dense(pred, index, truth, config)
    assert overall.n_scored == 2 and overall.coverage == pytest.approx(2 / 3)
    assert overall.metrics is None  # fewer than 5 scored pixels give no metrics (as for held-out points)
    assert by_range["0-10 m"].n_scored == 0 and by_range["10-20 m"].n_scored == 1
