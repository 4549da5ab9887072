"""The last few LiDAR scans by timestamp, to pair each camera image with the scan nearest in time."""

from __future__ import annotations

import bisect
import threading
from typing import Generic, TypeVar

Item = TypeVar("Item")


class NearestStampBuffer(Generic[Item]):
    """Keeps up to `capacity` items sorted by stamp (seconds); thread-safe (callbacks add, a worker reads).

    An item whose stamp is already present replaces it; out-of-order arrivals are inserted in order.
    """

    def __init__(self, capacity: int = 10) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._stamps: list[float] = []
        self._items: list[Item] = []
        self._lock = threading.Lock()

    def add(self, stamp: float, item: Item) -> None:
        with self._lock:
            position = bisect.bisect_left(self._stamps, stamp)
            if position < len(self._stamps) and self._stamps[position] == stamp:
                self._items[position] = item
                return
            self._stamps.insert(position, stamp)
            self._items.insert(position, item)
            if len(self._stamps) > self._capacity:  # drop the oldest
                del self._stamps[0], self._items[0]

    def nearest(self, stamp: float, max_dt: float) -> tuple[float, Item] | None:
        """(stamp, item) closest in time to `stamp` if within max_dt seconds, else None."""
        with self._lock:
            position = bisect.bisect_left(self._stamps, stamp)
            candidates = [k for k in (position - 1, position) if 0 <= k < len(self._stamps)]
            if not candidates:
                return None
            best = min(candidates, key=lambda k: abs(self._stamps[k] - stamp))
            if abs(self._stamps[best] - stamp) > max_dt:
                return None
            return self._stamps[best], self._items[best]

    def clear(self) -> None:
        with self._lock:
            self._stamps.clear()
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._stamps)
