"""Window bounds: rolling windows, the calendar day, and fixed intervals.

Windows are half-open ``[start_us, end_us)`` and end on a one-minute bucket boundary, so every
window is an exact union of buckets. A window ending at 10:07:42 answers for ``[.., 10:07:00)``;
a live window (no ``at``) asked at 10:07:42 answers for ``[.., 10:08:00)``: everything so far.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from stream.kpi.timeutil import BUCKET_US, US_PER_S, bucket_start_us, datetime_to_us, us_to_datetime

ROLLING_WINDOWS_S = {"5m": 300, "15m": 900, "30m": 1800, "1h": 3600}
WINDOWS = (*ROLLING_WINDOWS_S, "today")
INTERVAL_SIZES_S = {"15m": 900, "30m": 1800}


def live_end_us(now_us: int) -> int:
    """Where a live window (no ``at``) ends: the end of the current minute, so it holds every
    event so far instead of lagging up to a minute behind. Nothing later than now exists yet."""
    return bucket_start_us(now_us) + BUCKET_US


def window_bounds(window: str, at_us: int, zone: ZoneInfo) -> tuple[int, int]:
    end_us = bucket_start_us(at_us)
    if window == "today":
        return local_midnight_us(end_us, zone), end_us
    try:
        return end_us - ROLLING_WINDOWS_S[window] * US_PER_S, end_us
    except KeyError:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}") from None


def local_midnight_us(ts_us: int, zone: ZoneInfo) -> int:
    """Start of the local calendar day holding ``ts_us`` (DST-safe)."""
    local = us_to_datetime(ts_us).astimezone(zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone)
    return datetime_to_us(midnight)


def interval_starts(size: str, start_us: int, end_us: int, zone: ZoneInfo) -> list[int]:
    """Starts of the fixed intervals of ``size`` overlapping ``[start_us, end_us)``, aligned to
    the local wall clock (whole quarter or half hours in the queue's zone)."""
    try:
        size_us = INTERVAL_SIZES_S[size] * US_PER_S
    except KeyError:
        raise ValueError(f"size must be one of {', '.join(INTERVAL_SIZES_S)}") from None
    offset_us = _utc_offset_us(start_us, zone)
    first = start_us - (start_us + offset_us) % size_us
    return list(range(first, end_us, size_us))


def _utc_offset_us(ts_us: int, zone: ZoneInfo) -> int:
    offset = us_to_datetime(ts_us).astimezone(zone).utcoffset() or timedelta(0)
    return offset // timedelta(microseconds=1)


def buckets_in(start_us: int, end_us: int) -> range:
    """Bucket starts covering ``[start_us, end_us)`` (both on bucket boundaries)."""
    return range(bucket_start_us(start_us), end_us, BUCKET_US)
