"""Temporal smoothing of per-frame alignments: EMA on (log scale, shift), outlier gating, hold, staleness.

Deterministic and clock-free: every update takes the frame's timestamp (seconds, e.g. the image header
stamp), so replaying a bag gives the same output as running live.

States (what the caller should do with the output):
- fresh: this frame's fit was accepted into the filter -> use `scale`/`shift`.
- held:  this frame brought no acceptable fit, but the last accepted one is at most `hold_time` old -> use.
- stale: the last accepted fit is older than `hold_time` -> do not publish metric depth.
- none:  no fit was ever accepted (or the filter was reset) -> do not publish metric depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from dpt_ros.alignment.fit import INVERSE_DEPTH, AlignmentResult


class FilterState(str, Enum):
    FRESH = "fresh"
    HELD = "held"
    STALE = "stale"
    NONE = "none"


@dataclass(frozen=True)
class TemporalFilterConfig:
    time_constant: float = 0.5  # seconds; EMA weight of a new fit is 1 - exp(-dt / time_constant); 0 = no smoothing
    hold_time: float = 1.0  # seconds the last accepted fit stays usable when frames bring none
    # a fit changing depth by more than this |log ratio| (~fraction) anywhere over its supported range is rejected
    gate: float = 0.15
    reacquire_after: int = 3  # this many consecutive rejected fits that agree with each other replace the filter

    def __post_init__(self) -> None:
        if self.time_constant < 0 or self.hold_time < 0:
            raise ValueError("time_constant and hold_time must be >= 0 seconds")
        if self.gate <= 0:
            raise ValueError(f"gate must be > 0, got {self.gate}")
        if self.reacquire_after < 1:
            raise ValueError(f"reacquire_after must be >= 1, got {self.reacquire_after}")


@dataclass(frozen=True)
class FilteredAlignment:
    """The filter's output for one frame. scale/shift are NaN in state none.

    age: seconds since the last accepted fit (inf in state none).
    accepted: whether this frame's own fit went into the filter.
    """

    state: FilterState
    scale: float
    shift: float
    space: str
    age: float
    accepted: bool
    reason: str

    @property
    def usable(self) -> bool:
        """Whether `to_metric` may use it (fresh or held)."""
        return self.state in (FilterState.FRESH, FilterState.HELD)


@dataclass(frozen=True)
class _Estimate:
    log_scale: float
    shift: float
    space: str
    stamp: float  # time of the last fit accepted into this estimate


class TemporalAlignmentFilter:
    """EMA over (log s, t) with gating; `update(fit, stamp)` once per frame (fit None = no LiDAR this frame)."""

    def __init__(self, config: TemporalFilterConfig = TemporalFilterConfig()) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget everything (state none)."""
        self._estimate: _Estimate | None = None
        self._last_stamp = -math.inf
        self._rejected: list[AlignmentResult] = []

    def update(self, fit: AlignmentResult | None, stamp: float) -> FilteredAlignment:
        """Feed one frame's fit (or None) taken at `stamp` seconds; returns what to use for this frame.

        A timestamp earlier than the previous one (a bag loop, a clock jump) resets the filter first.
        """
        if stamp < self._last_stamp:
            self.reset()
        self._last_stamp = stamp
        if fit is None or not fit.success:
            return self._output(stamp, False, f"no fit this frame: {fit.reason if fit else 'no LiDAR'}")

        estimate = self._estimate
        if estimate is None or estimate.space != fit.space or stamp - estimate.stamp > self.config.hold_time:
            self._start(fit, stamp)
            return self._output(stamp, True, "initialised from this frame's fit")

        change = depth_change(fit, estimate.log_scale, estimate.shift)
        if change > self.config.gate:
            return self._reject(fit, stamp, change)

        self._rejected.clear()
        time_constant = self.config.time_constant
        weight = 1.0 if time_constant == 0 else -math.expm1(-(stamp - estimate.stamp) / time_constant)
        self._estimate = _Estimate(
            log_scale=estimate.log_scale + weight * (math.log(fit.scale) - estimate.log_scale),
            shift=estimate.shift + weight * (fit.shift - estimate.shift),
            space=fit.space,
            stamp=stamp,
        )
        return self._output(stamp, True, f"accepted (depth change {change:.1%}, weight {weight:.2f})")

    def _reject(self, fit: AlignmentResult, stamp: float, change: float) -> FilteredAlignment:
        # Rejected fits that keep agreeing with each other mean the scene (or camera) really changed.
        previous = self._rejected[-1] if self._rejected else None
        if previous is not None and depth_change(fit, math.log(previous.scale), previous.shift) > self.config.gate:
            self._rejected.clear()
        self._rejected.append(fit)
        if len(self._rejected) >= self.config.reacquire_after:
            self._start(fit, stamp)
            reason = f"re-acquired after {self.config.reacquire_after} consistent rejected fits"
            return self._output(stamp, True, reason)
        return self._output(stamp, False, f"gated: depth change {change:.1%} > {self.config.gate:.0%}")

    def _start(self, fit: AlignmentResult, stamp: float) -> None:
        self._estimate = _Estimate(math.log(fit.scale), fit.shift, fit.space, stamp)
        self._rejected.clear()

    def _output(self, stamp: float, accepted: bool, reason: str) -> FilteredAlignment:
        estimate = self._estimate
        if estimate is None:
            return FilteredAlignment(FilterState.NONE, math.nan, math.nan, INVERSE_DEPTH, math.inf, accepted, reason)
        age = stamp - estimate.stamp
        if accepted:
            state = FilterState.FRESH
        elif age <= self.config.hold_time:
            state = FilterState.HELD
        else:
            state = FilterState.STALE
        scale = math.exp(estimate.log_scale)
        return FilteredAlignment(state, scale, estimate.shift, estimate.space, age, accepted, reason)


def depth_change(fit: AlignmentResult, log_scale: float, shift: float) -> float:
    """Largest |log| depth ratio between `fit` and (exp(log_scale), shift) over the fit's supported predictions.

    For inverse-depth fits the ratio (s*x + t) / (s'*x + t') is monotonic in x, so its extremes over the
    support interval are at the two ends. inf when either mapping is non-positive there.
    """
    scale = math.exp(log_scale)
    if fit.space != INVERSE_DEPTH:
        return abs(math.log(fit.scale / scale))
    worst = 0.0
    for x in fit.pred_support:
        ours, theirs = scale * x + shift, fit.scale * x + fit.shift
        if not (ours > 0 and theirs > 0):
            return math.inf
        worst = max(worst, abs(math.log(theirs / ours)))
    return worst
