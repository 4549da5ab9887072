"""Temporal filter: EMA on (log s, t), gating, re-acquisition, hold/stale/none states, clock-free."""

import math

import numpy as np
import pytest

from dpt_ros import (
    AlignmentResult,
    FilterState,
    TemporalAlignmentFilter,
    TemporalFilterConfig,
    fit_scale_shift,
    to_metric,
)
from dpt_ros.alignment.temporal_filter import depth_change


def make_fit(scale, shift, support=(10.0, 80.0), success=True, reason="ok"):
    return AlignmentResult(
        scale=scale, shift=shift, space="inverse_depth", method="robust", n_points=500, n_inliers=450,
        inlier_ratio=0.9, rms_inverse_residual=0.001, median_abs_rel=0.01, pred_support=support,
        inlier_mask=None, success=success, reason=reason,
    )  # fmt: skip


def test_first_fit_is_fresh_and_taken_as_is():
    out = TemporalAlignmentFilter().update(make_fit(0.004, -0.02), stamp=10.0)
    assert out.state is FilterState.FRESH and out.usable and out.accepted
    assert (out.scale, out.shift, out.age) == (pytest.approx(0.004), -0.02, 0.0)


def test_ema_blends_log_scale_and_shift_with_time_based_weight():
    filt = TemporalAlignmentFilter(TemporalFilterConfig(time_constant=0.5))
    filt.update(make_fit(0.004, -0.02), stamp=0.0)
    out = filt.update(make_fit(0.0042, -0.021), stamp=0.5)  # dt = time constant -> weight 1 - 1/e
    weight = 1.0 - math.exp(-1.0)
    assert out.state is FilterState.FRESH
    assert math.log(out.scale) == pytest.approx(math.log(0.004) + weight * math.log(0.0042 / 0.004))
    assert out.shift == pytest.approx(-0.02 + weight * -0.001)
    # no smoothing: follows the latest fit
    raw = TemporalAlignmentFilter(TemporalFilterConfig(time_constant=0.0))
    raw.update(make_fit(0.004, -0.02), stamp=0.0)
    assert raw.update(make_fit(0.0042, -0.021), stamp=0.1).scale == pytest.approx(0.0042)


def test_outlier_fit_is_gated_and_the_last_estimate_held():
    filt = TemporalAlignmentFilter(TemporalFilterConfig(gate=0.15, hold_time=1.0))
    filt.update(make_fit(0.004, -0.02), stamp=0.0)
    out = filt.update(make_fit(0.006, -0.02), stamp=0.1)  # 30-50 % depth change over the support
    assert out.state is FilterState.HELD and out.usable and not out.accepted
    assert out.reason.startswith("gated") and out.scale == pytest.approx(0.004)
    assert out.age == pytest.approx(0.1)


def test_consistent_rejected_fits_are_reacquired():
    filt = TemporalAlignmentFilter(TemporalFilterConfig(reacquire_after=3))
    filt.update(make_fit(0.004, -0.02), stamp=0.0)
    states = [filt.update(make_fit(0.006, -0.02), stamp=0.1 * k) for k in (1, 2, 3)]
    assert [s.accepted for s in states] == [False, False, True]
    assert states[-1].state is FilterState.FRESH and states[-1].scale == pytest.approx(0.006)
    assert states[-1].reason == "re-acquired after 3 consistent rejected fits"
    # jumps that disagree with each other never take over
    filt = TemporalAlignmentFilter(TemporalFilterConfig(reacquire_after=2))
    filt.update(make_fit(0.004, -0.02), stamp=0.0)
    for k, scale in enumerate((0.006, 0.009, 0.006, 0.009), start=1):
        assert not filt.update(make_fit(scale, -0.02), stamp=0.1 * k).accepted


def test_hold_then_stale_then_fresh_again_without_gating():
    filt = TemporalAlignmentFilter(TemporalFilterConfig(hold_time=1.0))
    filt.update(make_fit(0.004, -0.02), stamp=5.0)
    held = filt.update(None, stamp=5.8)
    assert held.state is FilterState.HELD and held.usable and "no LiDAR" in held.reason
    failed = make_fit(math.nan, math.nan, success=False, reason="too few LiDAR points: 3 < 20")
    assert filt.update(failed, stamp=6.0).state is FilterState.HELD
    stale = filt.update(failed, stamp=6.2)
    assert stale.state is FilterState.STALE and not stale.usable and "too few" in stale.reason
    with pytest.raises(ValueError, match="unusable"):
        to_metric(np.ones((2, 2)), stale)
    # a fit after staleness restarts the filter, however far it is from the old estimate
    restarted = filt.update(make_fit(0.008, -0.01), stamp=6.3)
    assert restarted.state is FilterState.FRESH and restarted.scale == pytest.approx(0.008)


def test_no_fit_ever_is_state_none():
    filt = TemporalAlignmentFilter()
    out = filt.update(None, stamp=1.0)
    assert out.state is FilterState.NONE and not out.usable and math.isnan(out.scale) and out.age == math.inf


def test_degenerate_lidar_frames_end_in_none_or_held_without_exceptions():
    wall = np.full((40, 50), 8.0)
    degenerate = fit_scale_shift(np.random.default_rng(0).normal(50.0, 0.2, wall.shape), wall)
    assert not degenerate.success
    filt = TemporalAlignmentFilter()
    assert filt.update(degenerate, stamp=0.0).state is FilterState.NONE
    filt.update(make_fit(0.004, -0.02), stamp=0.1)
    assert filt.update(degenerate, stamp=0.2).state is FilterState.HELD


def test_time_going_backwards_resets_the_filter():
    filt = TemporalAlignmentFilter()
    filt.update(make_fit(0.004, -0.02), stamp=100.0)
    assert filt.update(None, stamp=3.0).state is FilterState.NONE  # bag looped
    assert filt.update(make_fit(0.01, 0.0), stamp=3.1).scale == pytest.approx(0.01)


def test_filtered_fit_converts_to_metric_depth():
    filt = TemporalAlignmentFilter()
    out = filt.update(make_fit(0.5, 0.0), stamp=0.0)
    np.testing.assert_allclose(to_metric(np.array([1.0, 4.0]), out), [2.0, 0.5])


def test_depth_change_is_the_worst_log_depth_ratio_over_the_support():
    fit = make_fit(1.1, 0.0, support=(1.0, 2.0))
    assert depth_change(fit, math.log(1.0), 0.0) == pytest.approx(math.log(1.1))
    # shift difference matters most where inverse depth is small: x=1 -> (1 + 0.5) / 1
    assert depth_change(make_fit(1.0, 0.5, support=(1.0, 2.0)), 0.0, 0.0) == pytest.approx(math.log(1.5))
    assert depth_change(make_fit(1.0, -2.0, support=(1.0, 2.0)), 0.0, 0.0) == math.inf


def test_config_is_validated():
    with pytest.raises(ValueError, match="gate"):
        TemporalFilterConfig(gate=0.0)
    with pytest.raises(ValueError, match="reacquire_after"):
        TemporalFilterConfig(reacquire_after=0)
