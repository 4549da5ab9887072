"""Diagnostics counters, rates, percentiles and the log limiter, driven by explicit times."""

import math

from dpt_ros.pipeline.stats import FrameStats, LogLimiter


def test_rate_percentiles_counters_and_last_error() -> None:
    stats = FrameStats(counter_names=("dropped", "bad"), latency_names=("inference", "age"), window=10)
    for i in range(20):
        stats.record_arrival(i * 0.1)  # 10 Hz
    for ms in range(1, 101):
        stats.record_latency("inference", ms / 1000.0)  # the window keeps 91..100 ms
    stats.count("dropped")
    stats.count("bad", "bad thing")
    stats.count("bad")
    snapshot = stats.snapshot(now_s=1.95)
    assert math.isclose(snapshot.input_rate_hz, 10.0)
    p50, p95 = snapshot.latencies_ms["inference"]
    assert math.isclose(p50, 95.5) and math.isclose(p95, 99.55)
    assert all(math.isnan(p) for p in snapshot.latencies_ms["age"])  # nothing recorded yet
    assert snapshot.counters == {"dropped": 1, "bad": 2}
    assert snapshot.last_error == "bad: bad thing"
    assert stats.snapshot(now_s=10.0).input_rate_hz == 0.0  # input stopped


def test_empty_stats_report_nan_latency() -> None:
    snapshot = FrameStats(counter_names=()).snapshot(0.0)
    assert math.isnan(snapshot.latencies_ms["latency"][0]) and snapshot.input_rate_hz == 0.0


def test_log_limiter_allows_once_per_period_per_kind_and_reports_suppressed() -> None:
    limiter = LogLimiter(period_s=10.0)
    assert limiter.allow("a", 0.0) == 0
    assert limiter.allow("a", 1.0) is None
    assert limiter.allow("b", 1.0) == 0
    assert limiter.allow("a", 5.0) is None
    assert limiter.allow("a", 10.5) == 2
