"""Request dependencies as ``Annotated`` aliases: services, the reader, and query parameters."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Query, Request

from api import clock
from api.services import Services
from api.views import KpiReader
from stream.kpi.histogram import EXACT_THRESHOLDS, exact_threshold
from stream.kpi.timeutil import US_PER_S, TimestampError, parse_ts_us
from stream.kpi.windows import live_end_us

Window = Literal["5m", "15m", "30m", "1h", "today"]
IntervalSize = Literal["15m", "30m"]


# async, though nothing is awaited: FastAPI runs a plain ``def`` dependency in a worker thread,
# a thread hop on every request (half the CPU of a cached KPI answer).
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_reader(services: Annotated[Services, Depends(get_services)]) -> KpiReader:
    return services.reader


ServicesDep = Annotated[Services, Depends(get_services)]
ReaderDep = Annotated[KpiReader, Depends(get_reader)]

WindowQuery = Annotated[Window, Query(description="Rolling window, or `today` (queue's zone)")]
ThresholdQuery = Annotated[
    int | None,
    Query(
        ge=0, le=3600, description="Service-level threshold in whole seconds (default: the queue's)"
    ),
]
AtQuery = Annotated[
    str | None,
    Query(
        description="RFC 3339 time the window ends at, aligned down to the minute. Default: live, "
        "the window ends at the end of the current minute and holds every event so far",
        examples=["2026-11-23T10:15:00Z"],
    ),
]


# Far enough for any question about contact-centre data, near enough that window arithmetic
# (a day before, a week before) never leaves the calendar.
EARLIEST_US = 0
LATEST_US = 7_258_118_400 * US_PER_S  # 2200-01-01T00:00:00Z


def time_param(name: str, value: str | None, default_us: int | None = None) -> int:
    """An RFC 3339 query parameter as epoch µs; a clear 422 when it is not one."""
    if value is None:
        return default_us if default_us is not None else live_end_us(clock.now_us())
    try:
        moment_us = parse_ts_us(value)
    except TimestampError as exc:
        raise HTTPException(422, f"query parameter '{name}': {exc}") from None
    if not EARLIEST_US <= moment_us <= LATEST_US:
        raise HTTPException(422, f"query parameter '{name}': must be between 1970 and 2200")
    return moment_us


def threshold_param(value: int | None) -> int | None:
    """Only thresholds on a histogram bin edge are exact; refuse the others clearly."""
    if value is not None and not exact_threshold(value):
        raise HTTPException(422, f"query parameter 'threshold_s': {EXACT_THRESHOLDS}")
    return value


def now_us() -> int:
    return clock.now_us()
