"""Event time as integer epoch microseconds: parsing, formatting and bucket arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.kpi.timeutil import (
    BUCKET_US,
    US_PER_S,
    TimestampError,
    bucket_start_us,
    datetime_to_us,
    parse_ts_us,
    seconds_between,
    us_to_datetime,
    us_to_rfc3339,
)

# 2024-03-01T10:00:00Z, a Friday.
T0_US = 1_709_287_200 * US_PER_S
# Epoch microseconds up to 2100: below 2**52, where a float epoch keeps the microsecond.
YEAR_2100_US = 4_102_444_800 * US_PER_S


@pytest.mark.parametrize(
    ("value", "expected_us"),
    [
        ("2024-03-01T10:00:00Z", T0_US),  # the canonical form
        ("2024-03-01T10:00:00+00:00", T0_US),  # numeric UTC offset
        ("2024-03-01T11:00:00+01:00", T0_US),  # another offset: same instant
        ("2024-03-01T04:30:00-05:30", T0_US),  # negative half-hour offset
        ("2024-03-01t10:00:00z", T0_US),  # RFC 3339 allows lower-case t and z
        ("2024-03-01 10:00:00Z", T0_US),  # RFC 3339 allows a space separator
        ("2024-03-01T10:00:00.5Z", T0_US + 500_000),  # one fraction digit
        ("2024-03-01T10:00:00.000001Z", T0_US + 1),  # the microsecond itself
        ("2024-03-01T10:00:00.1234567Z", T0_US + 123_456),  # below the microsecond: truncated
        ("1969-12-31T23:59:59.999999Z", -1),  # before the epoch
        (1_709_287_200, T0_US),  # epoch seconds as an int
        (1_709_287_200.000001, T0_US + 1),  # epoch seconds as a float: microsecond kept
        (1_709_287_200.5, T0_US + 500_000),  # half a second
        (0, 0),  # the epoch
        (-1.5, -1_500_000),  # negative epoch seconds
    ],
)
def test_parse_ts_us_accepts_rfc3339_and_epoch_seconds(value: object, expected_us: int) -> None:
    assert parse_ts_us(value) == expected_us


@pytest.mark.parametrize(
    "value",
    [
        "2024-03-01T10:00:00",  # no offset: ambiguous instant
        "2024-03-01",  # a date is not a timestamp
        "2024-03-01X10:00:00Z",  # separator neither T nor space
        "2024-03-01T24:00:00Z",  # hour out of range
        "20240301T100000Z",  # ISO 8601 basic format is not RFC 3339
        "",  # empty
        True,  # a boolean is an int in Python, but not a timestamp
        float("nan"),  # not finite
        float("inf"),  # not finite
        None,  # missing
        [1_709_287_200],  # wrong type
    ],
)
def test_parse_ts_us_refuses_what_is_not_a_timestamp(value: object) -> None:
    with pytest.raises(TimestampError):
        parse_ts_us(value)


def test_timestamp_error_is_a_value_error() -> None:
    # Callers that validate input catch ValueError; TimestampError must be one.
    assert issubclass(TimestampError, ValueError)


@pytest.mark.parametrize(
    ("moment", "expected_us"),
    [
        (datetime(2024, 3, 1, 10, tzinfo=UTC), T0_US),  # UTC
        (datetime(2024, 3, 1, 11, tzinfo=timezone(timedelta(hours=1))), T0_US),  # offset
        (datetime(2024, 3, 1, 10, 0, 0, 1, tzinfo=UTC), T0_US + 1),  # microsecond exact
        (datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), -1),  # before the epoch
    ],
)
def test_datetime_to_us(moment: datetime, expected_us: int) -> None:
    assert datetime_to_us(moment) == expected_us


@given(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-11, minutes=-30))])))
def test_datetime_to_us_is_the_whole_microseconds_since_the_epoch(moment: datetime) -> None:
    # Independent of the arithmetic datetime_to_us uses: timedelta's own division.
    since_epoch = moment - datetime(1970, 1, 1, tzinfo=UTC)
    assert datetime_to_us(moment) == since_epoch // timedelta(microseconds=1)


def test_datetime_to_us_refuses_a_naive_datetime() -> None:
    naive = datetime(2024, 3, 1, 10)  # noqa: DTZ001 - the point of the test
    with pytest.raises(TimestampError):
        datetime_to_us(naive)


def test_us_to_datetime_is_utc_aware() -> None:
    moment = us_to_datetime(T0_US + 1)
    assert moment == datetime(2024, 3, 1, 10, 0, 0, 1, tzinfo=UTC)
    assert moment.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("ts_us", "expected"),
    [
        (T0_US, "2024-03-01T10:00:00Z"),  # whole second: no fraction
        (T0_US + 500_000, "2024-03-01T10:00:00.5Z"),  # trailing zeros dropped
        (T0_US + 1, "2024-03-01T10:00:00.000001Z"),  # leading zeros kept
        (0, "1970-01-01T00:00:00Z"),  # the epoch
        (-1, "1969-12-31T23:59:59.999999Z"),  # before the epoch
    ],
)
def test_us_to_rfc3339(ts_us: int, expected: str) -> None:
    assert us_to_rfc3339(ts_us) == expected


@given(st.integers(min_value=-(10**15), max_value=YEAR_2100_US))
def test_rfc3339_round_trip(ts_us: int) -> None:
    assert parse_ts_us(us_to_rfc3339(ts_us)) == ts_us


@given(st.integers(min_value=0, max_value=YEAR_2100_US))
def test_float_epoch_seconds_keep_the_microsecond(ts_us: int) -> None:
    # Producers send `ts_us / 1e6`; the microsecond must survive the float.
    assert parse_ts_us(ts_us / US_PER_S) == ts_us


@pytest.mark.parametrize(
    ("ts_us", "bucket_us", "expected"),
    [
        (T0_US, BUCKET_US, T0_US),  # exactly on a boundary: its own bucket
        (T0_US + BUCKET_US - 1, BUCKET_US, T0_US),  # last microsecond of the bucket
        (T0_US + BUCKET_US, BUCKET_US, T0_US + BUCKET_US),  # next bucket starts
        (T0_US - 1, BUCKET_US, T0_US - BUCKET_US),  # one microsecond before: previous bucket
        (-1, BUCKET_US, -BUCKET_US),  # before the epoch: floor, not truncation
        (T0_US + 7 * US_PER_S, 5 * US_PER_S, T0_US + 5 * US_PER_S),  # another bucket size
    ],
)
def test_bucket_start_us(ts_us: int, bucket_us: int, expected: int) -> None:
    assert bucket_start_us(ts_us, bucket_us) == expected


@given(st.integers(min_value=-(10**16), max_value=10**16))
def test_bucket_holds_its_timestamp(ts_us: int) -> None:
    start = bucket_start_us(ts_us)
    assert start <= ts_us < start + BUCKET_US
    assert start % BUCKET_US == 0


@pytest.mark.parametrize(
    ("start_us", "end_us", "expected_s"),
    [
        (T0_US, T0_US + 20 * US_PER_S, 20.0),  # whole seconds
        (T0_US, T0_US + 1, 0.000001),  # one microsecond
        (T0_US, T0_US, 0.0),  # no time
        (T0_US + US_PER_S, T0_US, -1.0),  # reversed: negative, not clamped here
    ],
)
def test_seconds_between(start_us: int, end_us: int, expected_s: float) -> None:
    assert seconds_between(start_us, end_us) == expected_s
