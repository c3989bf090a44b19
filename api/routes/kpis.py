"""Queue and whole-centre KPIs: rolling windows, today, fixed intervals."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from api.deps import (
    AtQuery,
    IntervalSize,
    ReaderDep,
    ThresholdQuery,
    WindowQuery,
    threshold_param,
    time_param,
)
from api.errors import INVALID, NOT_FOUND
from stream.kpi.timeutil import US_PER_S
from stream.kpi.windows import local_midnight_us

router = APIRouter(prefix="/v1", tags=["kpis"], responses=INVALID)

MAX_INTERVAL_SPAN_S = 8 * 86400
COMPARISONS = ("previous", "last_week")

CompareQuery = Annotated[
    str | None,
    Query(
        description="Add the same figures for `previous` (the window before; for `today`, "
        "yesterday to the same time) and/or `last_week` (the same window 7 days before), "
        "comma-separated, under `compare`",
        examples=["previous", "previous,last_week"],
    ),
]


def compare_param(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    names = tuple(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    unknown = [name for name in names if name not in COMPARISONS]
    if unknown or not names:
        raise HTTPException(
            422, f"query parameter 'compare' must be {' or '.join(COMPARISONS)} (comma-separated)"
        )
    return names


@router.get("/kpis", summary="Every queue's KPIs and the whole-centre total")
async def centre_kpis(
    reader: ReaderDep,
    window: WindowQuery = "15m",
    at: AtQuery = None,
    threshold_s: ThresholdQuery = None,
    compare: CompareQuery = None,
) -> dict[str, Any]:
    return reader.centre_kpis(
        window, time_param("at", at), threshold_param(threshold_s), compare_param(compare)
    )


@router.get("/queues/{queue}/kpis", summary="One queue's KPIs over a window", responses=NOT_FOUND)
async def queue_kpis(
    queue: str,
    reader: ReaderDep,
    window: WindowQuery = "15m",
    at: AtQuery = None,
    threshold_s: ThresholdQuery = None,
    compare: CompareQuery = None,
) -> dict[str, Any]:
    _known(reader, queue)
    return reader.queue_kpis(
        queue, window, time_param("at", at), threshold_param(threshold_s), compare_param(compare)
    )


@router.get(
    "/queues/{queue}/intervals", summary="Fixed 15- or 30-minute intervals", responses=NOT_FOUND
)
async def queue_intervals(
    queue: str,
    reader: ReaderDep,
    size: IntervalSize = "15m",
    start: AtQuery = None,
    end: AtQuery = None,
    threshold_s: ThresholdQuery = None,
) -> list[dict[str, Any]]:
    _known(reader, queue)
    end_us = time_param("end", end)
    today_us = local_midnight_us(end_us, reader.queue_zone(queue))
    start_us = time_param("start", start, default_us=today_us)
    if start_us >= end_us:
        raise HTTPException(422, "query parameter 'start' must be before 'end'")
    if end_us - start_us > MAX_INTERVAL_SPAN_S * US_PER_S:
        raise HTTPException(422, "'start' to 'end' may span at most 8 days")
    return reader.intervals(queue, size, start_us, end_us, threshold_param(threshold_s))


def _known(reader: ReaderDep, queue: str) -> None:
    if not reader.queue_exists(queue):
        raise HTTPException(404, f"queue {queue!r} has no events and is not configured")
