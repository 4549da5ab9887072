"""Thread-safe counters, input rate and latency percentiles for a node's diagnostics, a log limiter, and the
stage clock that times each step of a frame.

Diagnostics times are plain floats in seconds from a monotonic clock the caller passes in, so tests can
drive them; stage times are wall-clock milliseconds.
"""

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class StatsSnapshot:
    """What diagnostics report: rate in Hz, latency name -> (p50, p95) in ms, counters as totals since start."""

    input_rate_hz: float
    latencies_ms: dict[str, tuple[float, float]]
    counters: dict[str, int]
    last_error: str


@dataclass
class FrameStats:
    """Counts events and keeps the last `window` input times and latencies of each kind (bounded memory)."""

    counter_names: tuple[str, ...]
    latency_names: tuple[str, ...] = ("latency",)
    window: int = 100
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _arrivals: deque = field(init=False, repr=False)
    _latencies_s: dict[str, deque] = field(init=False, repr=False)
    _counters: dict[str, int] = field(init=False, repr=False)
    _last_error: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        self._arrivals = deque(maxlen=self.window)
        self._latencies_s = {name: deque(maxlen=self.window) for name in self.latency_names}
        self._counters = dict.fromkeys(self.counter_names, 0)

    def record_arrival(self, now_s: float) -> None:
        """An input message arrived (used for the input rate)."""
        with self._lock:
            self._arrivals.append(now_s)

    def record_latency(self, name: str, seconds: float) -> None:
        """One frame took `seconds` in the step called `name` (one of latency_names)."""
        with self._lock:
            self._latencies_s[name].append(seconds)

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
            latencies_ms = {name: np.asarray(v, dtype=np.float64) * 1000.0 for name, v in self._latencies_s.items()}
            counters = dict(self._counters)
            last_error = self._last_error
        rate = 0.0
        if len(arrivals) >= 2 and now_s - arrivals[-1] < 5.0:
            rate = (len(arrivals) - 1) / max(arrivals[-1] - arrivals[0], 1e-9)
        percentiles = {
            name: tuple(float(p) for p in np.percentile(values, [50, 95])) if values.size else (math.nan, math.nan)
            for name, values in latencies_ms.items()
        }
        return StatsSnapshot(rate, percentiles, counters, last_error)


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


class StageClock:
    """`with clock("name"):` records the block's wall time in milliseconds as timings_ms["name"].

    One clock times every stage of a frame: the engine's (prepare, forward, post, copy), the pipeline's
    (depth_stage, resize, cloud, ...) and the segmentation network's. `synchronize` (e.g.
    torch.cuda.synchronize) is called at both ends of each stage, so device work queued asynchronously is
    charged to the stage that queued it; the benchmark passes it on a GPU, the node does not (it waits for
    the device once, when results are copied to the host).
    """

    def __init__(
        self, timings_ms: dict[str, float] | None = None, synchronize: Callable[[], object] | None = None
    ) -> None:
        self.timings_ms: dict[str, float] = {} if timings_ms is None else timings_ms
        self._synchronize = synchronize

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self._synchronize is not None:
            self._synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self._synchronize is not None:
                self._synchronize()
            self.timings_ms[name] = (time.perf_counter() - start) * 1000.0
