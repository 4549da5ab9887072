"""NearestStampBuffer: pairing by stamp, eviction by arrival, timelines and far-future scans."""

import pytest

from dpt_ros.pipeline.scan_buffer import FUTURE_HORIZON_S, NearestStampBuffer, ScanArrival, ScanBufferCounts


def test_pairs_the_nearest_scan_within_max_dt_and_evicts_the_oldest_arrival():
    buffer = NearestStampBuffer(capacity=3)
    for stamp in (1.0, 1.1, 0.9, 1.2):  # 0.9 arrives out of order (within the tolerance); 1.0 arrived first
        assert buffer.add(stamp, f"scan@{stamp}") is ScanArrival.STORED
    assert len(buffer) == 3
    assert buffer.nearest(0.93, max_dt=0.1) == (0.9, "scan@0.9")
    assert buffer.nearest(1.04, max_dt=0.1) == (1.1, "scan@1.1")  # 1.0 was the oldest arrival: evicted
    assert buffer.nearest(1.35, max_dt=0.1) is None
    buffer.add(1.2, "replaced")
    assert buffer.nearest(1.25, max_dt=0.1) == (1.2, "replaced") and len(buffer) == 3


def test_scans_after_a_jump_back_pair_again():
    """The issue's case: ten scans at 100 s, then thirty from 50 s; the old ones must not block pairing."""
    buffer = NearestStampBuffer(capacity=10)
    for k in range(10):
        buffer.add(100.0 + 0.1 * k, "old")
    arrivals = [buffer.add(50.0 + 0.1 * k, f"new{k}") for k in range(30)]
    assert arrivals[0] is ScanArrival.STORED_AFTER_RESET and set(arrivals[1:]) == {ScanArrival.STORED}
    found = buffer.nearest(52.0, 0.1)
    assert found is not None and found[0] == pytest.approx(52.0) and found[1] == "new20"
    assert buffer.nearest(100.5, 0.1) is None  # nothing of the old timeline is left
    assert buffer.counts() == ScanBufferCounts(future_scans=0, scan_resets=1, reference_resets=0)


def test_far_future_scans_are_counted_and_do_not_evict_good_ones():
    buffer = NearestStampBuffer(capacity=10)
    buffer.observe_reference(50.0)
    for k in range(10):
        buffer.add(49.5 + 0.1 * k, "good")
    for k in range(30):  # a driver before its clock sync: stamps an hour ahead of the images
        assert buffer.add(3650.0 + 0.1 * k, "future") is ScanArrival.FUTURE
    assert buffer.nearest(50.0, 0.05)[1] == "good" and buffer.nearest(49.5, 0.05)[1] == "good"  # none evicted
    assert buffer.nearest(3652.0, 0.05) is None  # and the future ones made way for each other
    assert buffer.add(50.0 + FUTURE_HORIZON_S, "edge") is ScanArrival.STORED  # at the horizon: the present
    assert buffer.counts().future_scans == 30 and len(buffer) == 10


def test_scans_ahead_of_the_images_pair_once_the_images_jump_forward_to_them():
    """A camera resuming after a pause: the first scans of the new stretch may arrive before its first image."""
    buffer = NearestStampBuffer(capacity=10)
    buffer.observe_reference(100.0)
    assert buffer.add(199.97, "ahead") is ScanArrival.FUTURE
    buffer.observe_reference(200.0)
    assert buffer.nearest(200.0, 0.05) == (199.97, "ahead")


def test_images_resetting_first_drop_the_old_scans_and_refuse_stragglers():
    buffer = NearestStampBuffer(capacity=10)
    for k in range(10):
        buffer.observe_reference(110.0 + 0.1 * k)
        buffer.add(110.0 + 0.1 * k, "old")
    buffer.reference_reset(100.0)  # the images looped first
    assert len(buffer) == 0
    assert buffer.add(111.0, "in flight") is ScanArrival.FUTURE  # an old-timeline scan still on its way
    arrivals = [buffer.add(100.0 + 0.1 * k, "new") for k in range(10)]
    assert set(arrivals) == {ScanArrival.STORED}  # the straggler does not make them look like a reset
    assert buffer.nearest(100.0, 0.05) == (100.0, "new") and buffer.nearest(111.0, 0.05) is None  # evicted first
    assert buffer.counts() == ScanBufferCounts(future_scans=1, scan_resets=0, reference_resets=1)


def test_scans_resetting_first_keep_the_new_scans_when_the_images_follow():
    buffer = NearestStampBuffer(capacity=10)
    for k in range(10):
        buffer.observe_reference(110.0 + 0.1 * k)
        buffer.add(110.0 + 0.1 * k, "old")
    assert buffer.add(100.0, "new") is ScanArrival.STORED_AFTER_RESET  # the LiDAR looped first
    buffer.add(100.1, "new")
    assert buffer.nearest(110.9, 0.05) is None  # old images do not pair with new-timeline scans
    buffer.reference_reset(100.05)
    assert buffer.nearest(100.05, 0.06)[1] == "new" and len(buffer) == 2
    buffer.clear()
    assert len(buffer) == 0 and buffer.counts().reference_resets == 1


def test_rejects_bad_settings():
    for kwargs in ({"capacity": 0}, {"reset_tolerance_s": -1.0}, {"future_horizon_s": 0.0}):
        with pytest.raises(ValueError):
            NearestStampBuffer(**kwargs)
