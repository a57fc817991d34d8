"""Pure rules of a feed's rhythm: the next poll after a success or an error, and whether a feed has
gone silent for longer than its usual cadence."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from statistics import median

BACKOFF_MAX = timedelta(hours=6)
# A feed is silent when no new item came for this many usual gaps (and at least MIN_SILENCE).
SILENCE_FACTOR = 3
MIN_SILENCE = timedelta(hours=1)


def next_poll(now: datetime, interval: timedelta, errors_in_row: int) -> datetime:
    """After a good fetch the interval; after ``errors_in_row`` errors it doubles each time, up to
    BACKOFF_MAX (never below the interval itself)."""
    if errors_in_row <= 0:
        return now + interval
    delay = interval * (2 ** min(errors_in_row, 20))
    return now + max(interval, min(delay, BACKOFF_MAX))


def usual_gap(arrivals: list[datetime]) -> timedelta | None:
    """The median gap between consecutive new items (None with fewer than three)."""
    ordered = sorted(arrivals)
    gaps = [b - a for a, b in pairwise(ordered) if b > a]
    if len(gaps) < 2:
        return None
    return median(gaps)


def silent(now: datetime, last_new_at: datetime | None, arrivals: list[datetime]) -> bool:
    """True when the feed has gone longer without a new item than SILENCE_FACTOR usual gaps."""
    gap = usual_gap(arrivals)
    if gap is None or last_new_at is None:
        return False
    return now - last_new_at > max(gap * SILENCE_FACTOR, MIN_SILENCE)
