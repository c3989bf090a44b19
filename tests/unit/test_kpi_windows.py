"""Window bounds: rolling windows, the local calendar day and fixed intervals.

Every window is half-open, ``[start, end)``, and ends on a one-minute boundary at or before
``at``. Times below are UTC unless a zone is named.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.kpi.timeutil import BUCKET_US, US_PER_S, datetime_to_us, parse_ts_us
from stream.kpi.windows import (
    INTERVAL_SIZES_S,
    ROLLING_WINDOWS_S,
    buckets_in,
    interval_starts,
    live_end_us,
    local_midnight_us,
    window_bounds,
)

UTC_ZONE = ZoneInfo("UTC")
PARIS = ZoneInfo("Europe/Paris")
KATHMANDU = ZoneInfo("Asia/Kathmandu")  # UTC+05:45, no DST
KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30, no DST
NEW_YORK = ZoneInfo("America/New_York")


def us(text: str) -> int:
    return parse_ts_us(text)


def hours(start_us: int, end_us: int) -> float:
    return (end_us - start_us) / (3600 * US_PER_S)


# -- rolling windows ---------------------------------------------------------------------------
#
#   at = 10:07:42  ->  end = 10:07:00 (the bucket holding `at` is not complete: left out)
#
#   10:02   10:03   10:04   10:05   10:06   10:07   10:08
#     |-------|-------|-------|-------|-------|-------|
#     [============== 5m ==================)  ^ at 10:07:42
#   start = 10:02                        end = 10:07


@pytest.mark.parametrize(
    ("window", "at", "start", "end"),
    [
        # at inside a minute: end aligned down, start = end - W
        ("5m", "2024-03-01T10:07:42Z", "2024-03-01T10:02:00Z", "2024-03-01T10:07:00Z"),
        ("15m", "2024-03-01T10:07:42Z", "2024-03-01T09:52:00Z", "2024-03-01T10:07:00Z"),
        ("30m", "2024-03-01T10:07:42Z", "2024-03-01T09:37:00Z", "2024-03-01T10:07:00Z"),
        ("1h", "2024-03-01T10:07:42Z", "2024-03-01T09:07:00Z", "2024-03-01T10:07:00Z"),
        # at exactly on a minute: that minute is the end
        ("5m", "2024-03-01T10:07:00Z", "2024-03-01T10:02:00Z", "2024-03-01T10:07:00Z"),
        # one microsecond before a minute: still the previous end
        ("5m", "2024-03-01T10:06:59.999999Z", "2024-03-01T10:01:00Z", "2024-03-01T10:06:00Z"),
        # a rolling window crosses midnight freely
        ("1h", "2024-03-01T00:30:00Z", "2024-02-29T23:30:00Z", "2024-03-01T00:30:00Z"),
    ],
)
def test_rolling_window_bounds(window: str, at: str, start: str, end: str) -> None:
    assert window_bounds(window, us(at), UTC_ZONE) == (us(start), us(end))


def test_rolling_windows_ignore_the_zone() -> None:
    # A rolling window is a duration: the same in every zone.
    at_us = us("2024-03-31T01:30:10Z")  # during the Paris DST change
    for window in ROLLING_WINDOWS_S:
        assert window_bounds(window, at_us, PARIS) == window_bounds(window, at_us, UTC_ZONE)


@given(
    st.sampled_from(sorted(ROLLING_WINDOWS_S)),
    st.integers(min_value=0, max_value=4_102_444_800 * US_PER_S),
)
def test_rolling_window_is_whole_buckets_ending_at_most_a_minute_before_at(
    window: str, at_us: int
) -> None:
    start_us, end_us = window_bounds(window, at_us, UTC_ZONE)
    assert end_us <= at_us < end_us + BUCKET_US
    assert end_us - start_us == ROLLING_WINDOWS_S[window] * US_PER_S
    assert start_us % BUCKET_US == end_us % BUCKET_US == 0


@pytest.mark.parametrize("window", ["2h", "1d", "", "TODAY", "5M"])
def test_unknown_window_raises_value_error(window: str) -> None:
    with pytest.raises(ValueError, match="window"):
        window_bounds(window, us("2024-03-01T10:00:00Z"), UTC_ZONE)


# A live window (no `at`) ends at the end of the current minute, so it holds every event so far:
#
#   10:07                 10:08
#     |---------------------|
#     [ current minute      )   now = 10:07:42 -> end = 10:08 (nothing after now exists yet)


@pytest.mark.parametrize(
    ("now", "end"),
    [
        ("2024-03-01T10:07:42Z", "2024-03-01T10:08:00Z"),  # inside a minute: its end
        ("2024-03-01T10:07:00Z", "2024-03-01T10:08:00Z"),  # on a boundary: events at it count
        ("2024-03-01T10:07:59.999999Z", "2024-03-01T10:08:00Z"),  # the last microsecond
        ("2024-03-01T23:59:30Z", "2024-03-02T00:00:00Z"),  # ends at midnight
    ],
)
def test_live_end_us(now: str, end: str) -> None:
    assert live_end_us(us(now)) == us(end)


@given(st.integers(min_value=0, max_value=4_102_444_800 * US_PER_S))
def test_live_end_holds_now(now_us: int) -> None:
    end_us = live_end_us(now_us)
    assert now_us < end_us <= now_us + BUCKET_US
    assert end_us % BUCKET_US == 0


# -- today -------------------------------------------------------------------------------------
#
#   UTC, at = 10:07:42
#
#   00:00                                            10:07  10:08
#     |------------------------ ... -------------------|------|
#     [================ today ========================)   ^ at
#
#   at = 00:00:00 or 00:00:30: end = 00:00 is midnight itself, so today is [00:00, 00:00): empty
#
#   23:59   00:00   00:01
#     |-------|-------|
#             [)  ^ at 00:00:30


@pytest.mark.parametrize(
    ("at", "zone", "start", "end"),
    [
        # UTC, the middle of the day
        ("2024-03-01T10:07:42Z", UTC_ZONE, "2024-03-01T00:00:00Z", "2024-03-01T10:07:00Z"),
        # midnight exactly: today is the empty window at midnight
        ("2024-03-01T00:00:00Z", UTC_ZONE, "2024-03-01T00:00:00Z", "2024-03-01T00:00:00Z"),
        # half a minute past midnight: end is still midnight, still empty
        ("2024-03-01T00:00:30Z", UTC_ZONE, "2024-03-01T00:00:00Z", "2024-03-01T00:00:00Z"),
        # one minute past midnight: the first whole minute
        ("2024-03-01T00:01:00Z", UTC_ZONE, "2024-03-01T00:00:00Z", "2024-03-01T00:01:00Z"),
        # last minute of the day: 23 h 59 min
        ("2024-03-01T23:59:59Z", UTC_ZONE, "2024-03-01T00:00:00Z", "2024-03-01T23:59:00Z"),
        # Paris in winter (+01:00): local midnight is 23:00 UTC the day before
        ("2024-03-01T10:07:42Z", PARIS, "2024-02-29T23:00:00Z", "2024-03-01T10:07:00Z"),
        # Paris, 00:30 local (23:30 UTC): a new local day, though still the old UTC day
        ("2024-02-29T23:30:00Z", PARIS, "2024-02-29T23:00:00Z", "2024-02-29T23:30:00Z"),
        # Paris, 23:30 local (22:30 UTC): the local day began 23.5 h earlier
        ("2024-03-01T22:30:00Z", PARIS, "2024-02-29T23:00:00Z", "2024-03-01T22:30:00Z"),
        # Kathmandu (+05:45): local midnight is 18:15 UTC the day before
        ("2024-03-01T10:07:42Z", KATHMANDU, "2024-02-29T18:15:00Z", "2024-03-01T10:07:00Z"),
        # New York (-05:00): the local day started 05:00 UTC
        ("2024-03-01T10:07:42Z", NEW_YORK, "2024-03-01T05:00:00Z", "2024-03-01T10:07:00Z"),
        # New York, 04:59 UTC is still the previous local day
        ("2024-03-01T04:59:30Z", NEW_YORK, "2024-02-29T05:00:00Z", "2024-03-01T04:59:00Z"),
    ],
)
def test_today_bounds(at: str, zone: ZoneInfo, start: str, end: str) -> None:
    assert window_bounds("today", us(at), zone) == (us(start), us(end))


# Europe/Paris on 2024-03-31: clocks jump from 02:00 (+01:00) to 03:00 (+02:00).
#
#   local   00:00 (+01)    02:00=03:00          23:59     00:00 (+02) Apr 1
#   UTC     Mar 30 23:00   01:00                21:59     22:00
#             |--------------|---------- ... ------|---------|
#             [=============== 23 h =======================)
#
# And on 2024-10-27 clocks go back from 03:00 (+02:00) to 02:00 (+01:00): a 25 h day.


@pytest.mark.parametrize(
    ("at", "start", "end"),
    [
        # before the jump, 01:30 local (+01:00)
        ("2024-03-31T00:30:00Z", "2024-03-30T23:00:00Z", "2024-03-31T00:30:00Z"),
        # after the jump, 04:00 local (+02:00): the day started under the old offset
        ("2024-03-31T02:00:00Z", "2024-03-30T23:00:00Z", "2024-03-31T02:00:00Z"),
        # 23:59:59 local, the last second of the short day: 22 h 59 min of buckets
        ("2024-03-31T21:59:59Z", "2024-03-30T23:00:00Z", "2024-03-31T21:59:00Z"),
        # midnight of April 1 under the new offset: today is empty
        ("2024-03-31T22:00:00Z", "2024-03-31T22:00:00Z", "2024-03-31T22:00:00Z"),
        # the 25 h day: 02:30 local for the second time (+01:00)
        ("2024-10-27T01:30:00Z", "2024-10-26T22:00:00Z", "2024-10-27T01:30:00Z"),
        # the 25 h day, 23:59 local: 24 h 59 min of buckets
        ("2024-10-27T22:59:00Z", "2024-10-26T22:00:00Z", "2024-10-27T22:59:00Z"),
    ],
)
def test_today_on_paris_dst_change_days(at: str, start: str, end: str) -> None:
    assert window_bounds("today", us(at), PARIS) == (us(start), us(end))


@pytest.mark.parametrize(
    ("day", "next_day", "length_h"),
    [
        ("2024-03-30", "2024-03-31", 24.0),  # an ordinary day
        ("2024-03-31", "2024-04-01", 23.0),  # spring forward: 23 h
        ("2024-10-27", "2024-10-28", 25.0),  # fall back: 25 h
    ],
)
def test_paris_day_lengths(day: str, next_day: str, length_h: float) -> None:
    def noon(date: str) -> int:
        year, month, dom = map(int, date.split("-"))
        return datetime_to_us(datetime(year, month, dom, 12, tzinfo=PARIS))

    start_us = local_midnight_us(noon(day), PARIS)
    end_us = local_midnight_us(noon(next_day), PARIS)
    assert hours(start_us, end_us) == length_h


@pytest.mark.parametrize(
    ("at", "zone", "midnight"),
    [
        # Santiago skips 00:00-00:59 on 2024-09-08: the day starts at 01:00 local (04:00 UTC)
        ("2024-09-08T12:00:00Z", ZoneInfo("America/Santiago"), "2024-09-08T04:00:00Z"),
        # Santiago repeats 23:00-23:59 of 2024-04-06: April 7 starts at 00:00 -04:00
        ("2024-04-07T12:00:00Z", ZoneInfo("America/Santiago"), "2024-04-07T04:00:00Z"),
        # exactly at local midnight: that midnight
        ("2024-02-29T23:00:00Z", PARIS, "2024-02-29T23:00:00Z"),
        # one microsecond before local midnight: the previous day
        ("2024-02-29T22:59:59.999999Z", PARIS, "2024-02-28T23:00:00Z"),
    ],
)
def test_local_midnight_us(at: str, zone: ZoneInfo, midnight: str) -> None:
    assert local_midnight_us(us(at), zone) == us(midnight)


# -- fixed intervals ---------------------------------------------------------------------------
#
#   Asia/Kathmandu is UTC+05:45. Local half hours start at local :00 and :30, which is UTC :15
#   and :45; local quarter hours are UTC quarter hours too (5 h 45 is a whole number of them).
#
#   UTC     09:45    10:00    10:15    10:30    10:45    11:00
#   local   15:30    15:45    16:00    16:15    16:30    16:45
#   30m       [=================)[=================)[====...
#   15m       [========)[========)[========)[========)[====...
#   request         [10:07 ............................. 11:00)


@pytest.mark.parametrize(
    ("size", "zone", "start", "end", "expected"),
    [
        # UTC quarter hours: the first one holds the request's start
        (
            "15m",
            UTC_ZONE,
            "2024-03-01T10:07:00Z",
            "2024-03-01T11:00:00Z",
            ["10:00", "10:15", "10:30", "10:45"],
        ),
        # UTC half hours
        ("30m", UTC_ZONE, "2024-03-01T10:07:00Z", "2024-03-01T11:00:00Z", ["10:00", "10:30"]),
        # the request starts on an interval boundary: that interval first
        ("30m", UTC_ZONE, "2024-03-01T10:00:00Z", "2024-03-01T10:30:00Z", ["10:00"]),
        # the request ends one minute into an interval: that interval is included
        ("30m", UTC_ZONE, "2024-03-01T10:00:00Z", "2024-03-01T10:31:00Z", ["10:00", "10:30"]),
        # Paris (+01:00): whole-hour offsets align like UTC
        (
            "15m",
            PARIS,
            "2024-03-01T10:07:00Z",
            "2024-03-01T11:00:00Z",
            ["10:00", "10:15", "10:30", "10:45"],
        ),
        # Kolkata (+05:30): half hours still fall on UTC :00 and :30
        ("30m", KOLKATA, "2024-03-01T10:07:00Z", "2024-03-01T11:00:00Z", ["10:00", "10:30"]),
        # Kathmandu (+05:45): quarter hours align like UTC ...
        (
            "15m",
            KATHMANDU,
            "2024-03-01T10:07:00Z",
            "2024-03-01T11:00:00Z",
            ["10:00", "10:15", "10:30", "10:45"],
        ),
        # ... but half hours start at UTC :15 and :45 (local :00 and :30)
        (
            "30m",
            KATHMANDU,
            "2024-03-01T10:07:00Z",
            "2024-03-01T11:00:00Z",
            ["09:45", "10:15", "10:45"],
        ),
        # empty request: no interval
        ("15m", UTC_ZONE, "2024-03-01T10:00:00Z", "2024-03-01T10:00:00Z", []),
    ],
)
def test_interval_starts_align_to_the_local_wall_clock(
    size: str, zone: ZoneInfo, start: str, end: str, expected: list[str]
) -> None:
    starts = interval_starts(size, us(start), us(end), zone)
    assert starts == [us(f"{start[:10]}T{hh_mm}:00Z") for hh_mm in expected]


@given(
    st.sampled_from(sorted(INTERVAL_SIZES_S)),
    st.sampled_from([UTC_ZONE, PARIS, KATHMANDU, KOLKATA, NEW_YORK]),
    st.integers(min_value=0, max_value=4_000_000_000).map(lambda s: s * US_PER_S),
)
def test_every_interval_starts_on_a_local_wall_clock_boundary(
    size: str, zone: ZoneInfo, start_us: int
) -> None:
    size_s = INTERVAL_SIZES_S[size]
    starts = interval_starts(size, start_us, start_us + 2 * size_s * US_PER_S, zone)
    assert starts[0] <= start_us < starts[0] + size_s * US_PER_S
    for interval_us in starts:
        local = datetime.fromtimestamp(interval_us / US_PER_S, tz=zone)
        assert (local.minute * 60 + local.second) % size_s == 0
        assert local.microsecond == 0


@pytest.mark.parametrize("size", ["1h", "5m", "", "15"])
def test_unknown_interval_size_raises_value_error(size: str) -> None:
    with pytest.raises(ValueError, match="size"):
        interval_starts(size, us("2024-03-01T10:00:00Z"), us("2024-03-01T11:00:00Z"), UTC_ZONE)


# -- buckets of a window -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "count"),
    [
        ("2024-03-01T10:02:00Z", "2024-03-01T10:07:00Z", 5),  # a 5m window: five buckets
        ("2024-03-01T10:07:00Z", "2024-03-01T10:07:00Z", 0),  # empty window: none
        ("2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z", 1440),  # a day
    ],
)
def test_buckets_in(start: str, end: str, count: int) -> None:
    buckets = buckets_in(us(start), us(end))
    assert len(buckets) == count
    if count:
        assert buckets[0] == us(start)
        assert buckets[-1] == us(end) - BUCKET_US
