"""A one-item hand-over between a message callback and a worker thread that never builds a backlog."""

import threading
from typing import Generic, TypeVar

Item = TypeVar("Item")


class LatestSlot(Generic[Item]):
    """Holds at most one pending item; a newer `put` replaces it (the caller counts the drop).

    The worker blocks in `take()`, which returns None once `close()` was called, so its loop ends.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._pending: Item | None = None
        self._closed = False

    def put(self, item: Item) -> Item | None:
        """Offer `item`; returns the older pending item it replaced (dropped), or None."""
        with self._condition:
            replaced, self._pending = self._pending, item
            self._condition.notify()
            return replaced

    def take(self, timeout_s: float | None = None) -> Item | None:
        """Wait for and remove the pending item; None after close() or when timeout_s passes."""
        with self._condition:
            self._condition.wait_for(lambda: self._pending is not None or self._closed, timeout_s)
            if self._closed:
                return None
            item, self._pending = self._pending, None
            return item

    def close(self) -> None:
        """Wake the worker and make every later take() return None."""
        with self._condition:
            self._closed = True
            self._pending = None
            self._condition.notify_all()
