"""Thread-safe counters, input rate and latency percentiles for a node's diagnostics, plus a log limiter.

Times are plain floats in seconds from a monotonic clock the caller passes in, so tests can drive them.
"""

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class StatsSnapshot:
    """What diagnostics report: rates in Hz, latencies in milliseconds, counters as totals since start."""

    input_rate_hz: float
    latency_p50_ms: float
    latency_p95_ms: float
    counters: dict[str, int]
    last_error: str


@dataclass
class FrameStats:
    """Counts events and keeps the last `window` input times and latencies (bounded memory)."""

    counter_names: tuple[str, ...]
    window: int = 100
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _arrivals: deque = field(init=False, repr=False)
    _latencies_s: deque = field(init=False, repr=False)
    _counters: dict[str, int] = field(init=False, repr=False)
    _last_error: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        self._arrivals = deque(maxlen=self.window)
        self._latencies_s = deque(maxlen=self.window)
        self._counters = dict.fromkeys(self.counter_names, 0)

    def record_arrival(self, now_s: float) -> None:
        """An input message arrived (used for the input rate)."""
        with self._lock:
            self._arrivals.append(now_s)

    def record_latency(self, seconds: float) -> None:
        """One frame took `seconds` from arrival to published outputs."""
        with self._lock:
            self._latencies_s.append(seconds)

    def count(self, name: str, error: str | None = None) -> None:
        """Add one to counter `name` (which must be declared); remember `error` as the last error."""
        with self._lock:
            self._counters[name] += 1
            if error is not None:
                self._last_error = f"{name}: {error}"

    def snapshot(self, now_s: float) -> StatsSnapshot:
        """Current values; the input rate counts arrivals over the window, 0 when older than 5 s."""
        with self._lock:
            arrivals = list(self._arrivals)
            latencies_ms = np.asarray(self._latencies_s, dtype=np.float64) * 1000.0
            counters = dict(self._counters)
            last_error = self._last_error
        rate = 0.0
        if len(arrivals) >= 2 and now_s - arrivals[-1] < 5.0:
            rate = (len(arrivals) - 1) / max(arrivals[-1] - arrivals[0], 1e-9)
        p50, p95 = (np.percentile(latencies_ms, [50, 95]) if latencies_ms.size else (float("nan"),) * 2)
        return StatsSnapshot(rate, float(p50), float(p95), counters, last_error)


@dataclass
class LogLimiter:
    """Says whether a message of some kind may be logged now: at most once per `period_s` per kind."""

    period_s: float = 10.0
    _last_logged: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _suppressed: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def allow(self, kind: str, now_s: float) -> int | None:
        """None when `kind` was logged less than period_s ago; else how many were suppressed since."""
        with self._lock:
            last = self._last_logged.get(kind)
            if last is not None and now_s - last < self.period_s:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return None
            self._last_logged[kind] = now_s
            return self._suppressed.pop(kind, 0)
