"""The last few LiDAR scans, to pair each camera image with the scan nearest in time.

Scans are kept by *arrival* (the newest `capacity` arrivals), not by the highest stamps: a scan stamped
in the future (a driver before its clock sync) or the end of a bag before it looped would otherwise
hold its place forever and correctly stamped scans would never pair again.

Timelines (see dpt_ros.pipeline.timeline): a scan more than the reset tolerance older than the newest
stored scan starts a new scan timeline and the stored scans are forgotten. The stream the scans are
paired with (the images) reports its newest stamp with `observe_reference`: a scan stamped more than
`future_horizon_s` after it is counted as a future scan and, when the buffer is full, evicted before any
other, so future scans never push out the scans images can pair with (they stay only so that a forward
jump of the images, e.g. a camera resuming, finds them). When the images start a new timeline
(`reference_reset`), scans of the old one are dropped so they never pair with images of the new one: all
of them, unless the scans restarted first (then only those stamped beyond the horizon, from before).
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Final, Generic, TypeVar

from dpt_ros.pipeline.timeline import TIME_RESET_TOLERANCE_NS

Item = TypeVar("Item")

# A scan more than this after the newest image is not from this timeline (LiDAR and camera of one robot
# run within a scan period, 0.1 s, of each other; pairing itself uses the much smaller lidar_max_dt).
FUTURE_HORIZON_S: Final[float] = 1.0


class ScanArrival(str, Enum):
    STORED = "stored"
    STORED_AFTER_RESET = "stored_after_reset"  # the scan started a new timeline; older scans were dropped
    FUTURE = "future"  # beyond the reference stream's newest stamp + future_horizon_s: counted, evicted first


@dataclass(frozen=True)
class ScanBufferCounts:
    future_scans: int  # scans that arrived stamped beyond the horizon of the images
    scan_resets: int  # times the scans themselves jumped back in time
    reference_resets: int  # times the reference stream (images) started a new timeline


class NearestStampBuffer(Generic[Item]):
    """Up to `capacity` items by arrival, searchable by stamp (seconds); thread-safe (callbacks add, a worker reads).

    An item whose stamp is already stored replaces it (and counts as the newest arrival).
    """

    def __init__(
        self,
        capacity: int = 10,
        reset_tolerance_s: float = TIME_RESET_TOLERANCE_NS * 1e-9,
        future_horizon_s: float = FUTURE_HORIZON_S,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if reset_tolerance_s < 0 or future_horizon_s <= 0:
            raise ValueError("reset_tolerance_s must be >= 0 and future_horizon_s > 0")
        self._capacity = capacity
        self._reset_tolerance_s = reset_tolerance_s
        self._future_horizon_s = future_horizon_s
        self._arrivals: deque[float] = deque()  # stamps in arrival order (oldest arrival first)
        self._stamps: list[float] = []  # the same stamps, sorted
        self._items: dict[float, Item] = {}
        self._reference_s: float | None = None
        self._scans_restarted = False  # the scans reset since the reference last did
        self._future_scans = self._scan_resets = self._reference_resets = 0
        self._lock = threading.Lock()

    def add(self, stamp: float, item: Item) -> ScanArrival:
        with self._lock:
            arrival = ScanArrival.STORED
            if self._is_future(stamp):
                self._future_scans += 1
                arrival = ScanArrival.FUTURE
            elif self._stamps and stamp < self._newest_present() - self._reset_tolerance_s:
                self._clear()
                self._scan_resets += 1
                self._scans_restarted = True
                arrival = ScanArrival.STORED_AFTER_RESET
            if stamp in self._items:
                self._arrivals.remove(stamp)
            else:
                bisect.insort(self._stamps, stamp)
            self._arrivals.append(stamp)
            self._items[stamp] = item
            if len(self._arrivals) > self._capacity:  # the oldest future arrival, else the oldest arrival
                victim = next((s for s in self._arrivals if self._is_future(s)), self._arrivals[0])
                self._arrivals.remove(victim)
                self._discard(victim)
            return arrival

    def observe_reference(self, stamp: float) -> None:
        """The newest stamp of the paired stream (call for every image that continues its timeline)."""
        with self._lock:
            if self._reference_s is None or stamp > self._reference_s:
                self._reference_s = stamp

    def reference_reset(self, stamp: float) -> None:
        """The paired stream started a new timeline at `stamp`: drop the scans of the old one."""
        with self._lock:
            self._reference_resets += 1
            self._reference_s = stamp
            if self._scans_restarted:  # the scans are on the new timeline already; drop stragglers only
                for old in [s for s in self._stamps if s > stamp + self._future_horizon_s]:
                    self._arrivals.remove(old)
                    self._discard(old)
            else:
                self._clear()
            self._scans_restarted = False

    def nearest(self, stamp: float, max_dt: float) -> tuple[float, Item] | None:
        """(stamp, item) closest in time to `stamp` if within max_dt seconds, else None."""
        with self._lock:
            position = bisect.bisect_left(self._stamps, stamp)
            candidates = [k for k in (position - 1, position) if 0 <= k < len(self._stamps)]
            if not candidates:
                return None
            best = self._stamps[min(candidates, key=lambda k: abs(self._stamps[k] - stamp))]
            if abs(best - stamp) > max_dt:
                return None
            return best, self._items[best]

    def counts(self) -> ScanBufferCounts:
        with self._lock:
            return ScanBufferCounts(self._future_scans, self._scan_resets, self._reference_resets)

    def clear(self) -> None:
        """Forget every scan and the reference stamp (counters stay)."""
        with self._lock:
            self._clear()
            self._reference_s = None
            self._scans_restarted = False

    def __len__(self) -> int:
        with self._lock:
            return len(self._stamps)

    def _is_future(self, stamp: float) -> bool:
        return self._reference_s is not None and stamp > self._reference_s + self._future_horizon_s

    def _newest_present(self) -> float:
        """The newest stored stamp that is not in the future of the images (future ones do not set the timeline)."""
        present = [s for s in self._stamps if not self._is_future(s)]
        return present[-1] if present else -float("inf")

    def _clear(self) -> None:
        self._arrivals.clear()
        self._stamps.clear()
        self._items.clear()

    def _discard(self, stamp: float) -> None:
        del self._stamps[bisect.bisect_left(self._stamps, stamp)]
        del self._items[stamp]
