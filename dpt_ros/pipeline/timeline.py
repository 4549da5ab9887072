"""Whether a message stamp continues its stream's timeline, is a small reordering, or starts a new timeline.

A bag loop, a simulator reset or a driver's clock correction sends stamps far back in time; a node that
only drops "older than the last" frames would then stay silent until the stamps pass the old maximum.
Instead: a stamp more than `TIME_RESET_TOLERANCE_NS` older than the newest one seen is a *time reset*
(the caller forgets its per-stream state and answers the frame); a stamp older by at most that much is a
reordering in transport (two publishers, a DDS retransmission) and is dropped. Stamps are integer
nanoseconds (builtin_interfaces/Time), so comparisons are exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

# 0.25 s: far beyond any transport reordering (a few frame periods at 30 Hz, DDS retransmissions within
# milliseconds), yet short enough that the shortest real loop or reset (a 1 s clip, a simulator restart)
# is recognised as one. A looped recording shorter than this replays as reorderings and is dropped.
TIME_RESET_TOLERANCE_NS: Final[int] = 250_000_000


class StampOrder(str, Enum):
    NEXT = "next"  # same or later than the newest stamp: process it
    REORDERED = "reordered"  # older by at most the tolerance: drop it and count it
    RESET = "reset"  # older by more than the tolerance: a new timeline starts with this stamp


@dataclass(frozen=True)
class StampVerdict:
    order: StampOrder
    previous_ns: int | None  # the newest stamp before this one (None for the first message)


class Timeline:
    """The newest stamp of one stream (one camera's images); not thread-safe: one caller thread per stream."""

    def __init__(self, tolerance_ns: int = TIME_RESET_TOLERANCE_NS) -> None:
        if tolerance_ns < 0:
            raise ValueError(f"tolerance_ns must be >= 0, got {tolerance_ns}")
        self.tolerance_ns = tolerance_ns
        self.newest_ns: int | None = None

    def check(self, stamp_ns: int) -> StampVerdict:
        """Classify `stamp_ns` and move the timeline (a NEXT or RESET stamp becomes the newest)."""
        previous = self.newest_ns
        if previous is not None and stamp_ns < previous:
            if previous - stamp_ns <= self.tolerance_ns:
                return StampVerdict(StampOrder.REORDERED, previous)
            self.newest_ns = stamp_ns
            return StampVerdict(StampOrder.RESET, previous)
        self.newest_ns = stamp_ns
        return StampVerdict(StampOrder.NEXT, previous)

    def restart(self) -> None:
        """Forget the newest stamp (e.g. after a /clock jump): the next stamp is accepted as it is."""
        self.newest_ns = None


def describe_reset(previous_ns: int, stamp_ns: int) -> str:
    """'time reset: stamp 50.000000000 s after 102.000000000 s (52.000 s back)' for the one log line."""
    return (
        f"time reset: stamp {_seconds(stamp_ns)} s after {_seconds(previous_ns)} s "
        f"({(previous_ns - stamp_ns) / 1e9:.3f} s back); per-stream state cleared"
    )


def _seconds(stamp_ns: int) -> str:
    sign = "-" if stamp_ns < 0 else ""
    seconds, nanoseconds = divmod(abs(stamp_ns), 1_000_000_000)
    return f"{sign}{seconds}.{nanoseconds:09d}"
