"""Several cameras, one network: the newest image per camera, same-sized images in one forward pass.

    callbacks: slots.put(camera, image)   (a replaced image is returned: the caller counts it as dropped)
    worker:    slots.take_all(gather_s) -> decode -> group_by_image_size -> DepthPipeline.process_batch per group

A single camera is the same path with one slot, so the single- and multi-camera node share one code path.
"""

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Generic, TypeVar

from dpt_ros.pipeline.depth import Frame

Item = TypeVar("Item")


class LatestPerCamera(Generic[Item]):
    """A hand-over between message callbacks and one worker thread that never builds a backlog: at most one
    pending item per camera, a newer `put` for a camera replaces that camera's item only.

    The worker blocks in `take_all()`, which returns None once `close()` was called, so its loop ends.
    """

    def __init__(self, cameras: Sequence[str]) -> None:
        if not cameras or len(set(cameras)) != len(cameras):
            raise ValueError(f"need one or more distinct camera names, got {list(cameras)}")
        self.cameras = tuple(cameras)
        self._condition = threading.Condition()
        self._pending: dict[str, tuple[Item, float]] = {}  # camera -> (item, monotonic time it was put)
        self._closed = False

    def put(self, camera: str, item: Item) -> Item | None:
        """Offer `camera`'s newest item; returns the older pending item of the same camera it replaced, or None."""
        if camera not in self.cameras:
            raise ValueError(f"unknown camera {camera!r}; known: {list(self.cameras)}")
        with self._condition:
            replaced = self._pending.get(camera)
            self._pending[camera] = (item, time.monotonic())
            self._condition.notify_all()
            return None if replaced is None else replaced[0]

    def take_all(self, gather_s: float = 0.0, timeout_s: float | None = None) -> dict[str, Item] | None:
        """Wait for a pending item, then until every camera has one or `gather_s` has passed since the oldest
        pending item arrived (so images of synchronised cameras share a batch without waiting for a dead
        camera for long); remove and return them, in camera order. None after close() or when timeout_s passes.
        """
        with self._condition:
            self._condition.wait_for(lambda: self._pending or self._closed, timeout_s)
            if self._closed or not self._pending:
                return None
            oldest = min(arrival for _, arrival in self._pending.values())
            wait_s = max(0.0, oldest + gather_s - time.monotonic())
            self._condition.wait_for(lambda: len(self._pending) == len(self.cameras) or self._closed, wait_s)
            if self._closed:
                return None
            taken = {camera: self._pending[camera][0] for camera in self.cameras if camera in self._pending}
            self._pending.clear()
            return taken

    def close(self) -> None:
        """Wake the worker and make every later take_all() return None."""
        with self._condition:
            self._closed = True
            self._pending.clear()
            self._condition.notify_all()


def group_by_image_size(frames: Mapping[str, Frame]) -> list[list[str]]:
    """Cameras grouped by their frame's image shape: each group can run in one forward pass (the network
    needs one input size per batch). Groups and the cameras in them keep the order of `frames`."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for camera, frame in frames.items():
        groups.setdefault(frame.rgb.shape, []).append(camera)
    return list(groups.values())
