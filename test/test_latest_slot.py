"""The newest-only hand-over between the image callback and the inference thread."""

import threading

from dpt_ros.core.latest_slot import LatestSlot


def test_newer_items_replace_the_pending_one() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is None
    assert slot.put(2) == 1
    assert slot.put(3) == 2
    assert slot.take(timeout_s=0) == 3
    assert slot.take(timeout_s=0.01) is None


def test_close_wakes_a_waiting_worker() -> None:
    slot: LatestSlot[int] = LatestSlot()
    results = []
    worker = threading.Thread(target=lambda: results.append(slot.take()))
    worker.start()
    slot.close()
    worker.join(timeout=5)
    assert not worker.is_alive() and results == [None]
    slot.put(4)
    assert slot.take(timeout_s=0) is None
