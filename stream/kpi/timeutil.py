"""Event time as integer microseconds since the epoch, and bucket arithmetic.

Integer microseconds keep wait times exact: a wait derived from two timestamps is a
difference of integers, so "answered within 20 s" never depends on float rounding.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

US_PER_S = 1_000_000
BUCKET_US = 60 * US_PER_S
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TimestampError(ValueError):
    """A timestamp that is not RFC 3339 with an offset nor finite epoch seconds."""


def parse_ts_us(value: object) -> int:
    """RFC 3339 string with an offset, or epoch seconds, as epoch microseconds."""
    if isinstance(value, str):  # the usual case first
        return datetime_to_us(_parse_rfc3339(value))
    if isinstance(value, bool):
        raise TimestampError("ts must be an RFC 3339 string or epoch seconds, not a boolean")
    if isinstance(value, int):
        return value * US_PER_S
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TimestampError("ts must be finite")
        return round(value * US_PER_S)
    raise TimestampError("ts must be an RFC 3339 string or epoch seconds")


def _parse_rfc3339(text: str) -> datetime:
    if len(text) < 20 or text[10] not in "Tt ":
        raise TimestampError(f"ts {text[:40]!r} is not RFC 3339 (YYYY-MM-DDTHH:MM:SS with offset)")
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as exc:
        raise TimestampError(f"ts {text[:40]!r} is not RFC 3339: {exc}") from None
    if parsed.tzinfo is None:
        raise TimestampError(f"ts {text[:40]!r} has no UTC offset")
    return parsed


def datetime_to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise TimestampError("naive datetime: an offset is required")
    # The whole microseconds of the difference, as ``delta // timedelta(microseconds=1)``
    # gives them, without building a timedelta to divide by (over half of parse_ts_us's cost).
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_S + delta.microseconds


def us_to_datetime(ts_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=ts_us)


def us_to_rfc3339(ts_us: int) -> str:
    """UTC, with a ``Z`` suffix and only as many fraction digits as needed."""
    moment = us_to_datetime(ts_us)
    text = f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%S")  # %Y is unpadded < 1000
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def bucket_start_us(ts_us: int, bucket_us: int = BUCKET_US) -> int:
    """Start of the bucket holding ``ts_us``: buckets are ``[start, start + bucket_us)``."""
    return ts_us - ts_us % bucket_us


def seconds_between(start_us: int, end_us: int) -> float:
    return (end_us - start_us) / US_PER_S
