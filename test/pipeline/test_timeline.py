"""Time resets versus small reorderings of one stream's stamps (integer nanoseconds, exact)."""

import pytest

from dpt_ros.pipeline.timeline import TIME_RESET_TOLERANCE_NS, StampOrder, Timeline, describe_reset

S = 1_000_000_000


def test_later_and_equal_stamps_continue_the_timeline():
    timeline = Timeline()
    assert timeline.check(100 * S).order is StampOrder.NEXT
    assert timeline.check(100 * S).order is StampOrder.NEXT  # a repeated stamp (a one-frame loop) is answered
    verdict = timeline.check(101 * S)
    assert verdict.order is StampOrder.NEXT and verdict.previous_ns == 100 * S


@pytest.mark.parametrize("back_ns", [1, TIME_RESET_TOLERANCE_NS])
def test_a_stamp_at_most_the_tolerance_older_is_a_reordering_and_leaves_the_timeline(back_ns):
    timeline = Timeline()
    timeline.check(102 * S)
    assert timeline.check(102 * S - back_ns).order is StampOrder.REORDERED
    assert timeline.newest_ns == 102 * S


@pytest.mark.parametrize("new_stamp", [50 * S, 55 * S, 0, 1 * S, 101 * S + S // 2, 102 * S - TIME_RESET_TOLERANCE_NS - 1])
def test_a_stamp_further_back_is_a_reset_and_the_new_timeline_continues(new_stamp):
    timeline = Timeline()
    for second in (100, 101, 102):
        timeline.check(second * S)
    verdict = timeline.check(new_stamp)
    assert verdict.order is StampOrder.RESET and verdict.previous_ns == 102 * S
    assert timeline.check(new_stamp + 1).order is StampOrder.NEXT  # the next frame of the new timeline
    assert timeline.check(new_stamp).order is StampOrder.REORDERED  # reorderings are judged on the new one


def test_restart_accepts_any_next_stamp_and_describe_reset_names_both_stamps():
    timeline = Timeline(tolerance_ns=0)
    timeline.check(5 * S)
    assert timeline.check(5 * S - 1).order is StampOrder.RESET  # zero tolerance: every step back is a reset
    timeline.restart()
    assert timeline.check(0).order is StampOrder.NEXT
    text = describe_reset(102 * S, 50 * S + 5)
    assert "50.000000005 s after 102.000000000 s" in text and "(52.000 s back)" in text
    with pytest.raises(ValueError):
        Timeline(tolerance_ns=-1)
