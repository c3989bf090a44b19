"""Queue and whole-centre KPIs: rolling windows, today, fixed intervals."""

from __future__ import annotations

from collections.abc import Generator, Hashable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from api.answers import DEFAULT_LIMIT, Build, encoded, second_us
from api.deps import (
    AtQuery,
    IntervalSize,
    ServicesDep,
    ThresholdQuery,
    WindowQuery,
    now_us,
    threshold_param,
    time_param,
)
from api.errors import INVALID, NOT_FOUND
from api.representation import answer_response
from api.services import Services
from api.views import KpiReader, ModelReader
from stream.kpi.timeutil import US_PER_S
from stream.kpi.windows import live_end_us, local_midnight_us

router = APIRouter(prefix="/v1", tags=["kpis"], responses=INVALID)

MAX_INTERVAL_SPAN_S = 8 * 86400
COMPARISONS = ("previous", "last_week")
# Answers kept per route (api/answers.py): one small object per queue a wallboard may show.
QUEUE_ANSWERS = 256

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


@router.get(
    "/kpis",
    summary="Every queue's KPIs and the whole-centre total",
    response_model=dict[str, Any],
)
async def centre_kpis(
    request: Request,
    services: ServicesDep,
    window: WindowQuery = "15m",
    at: AtQuery = None,
    threshold_s: ThresholdQuery = None,
    compare: CompareQuery = None,
) -> Response:
    second, at_us, threshold, comparisons = _window_question(at, threshold_s, compare)

    def build(reader: ModelReader, second: int) -> Generator[None, None, bytes]:
        end_us = live_end_us(second) if at_us is None else at_us
        kpis = yield from reader.centre_kpis_slices(window, end_us, threshold, comparisons)
        yield  # the encoding (~2 ms for 200 queues) in a slice of its own
        return encoded(kpis)

    return await _answer(
        request, services, "kpis", (window, at_us, threshold, comparisons), second, build
    )


@router.get(
    "/queues/{queue}/kpis",
    summary="One queue's KPIs over a window",
    responses=NOT_FOUND,
    response_model=dict[str, Any],
)
async def queue_kpis(
    queue: str,
    request: Request,
    services: ServicesDep,
    window: WindowQuery = "15m",
    at: AtQuery = None,
    threshold_s: ThresholdQuery = None,
    compare: CompareQuery = None,
) -> Response:
    _known(services.reader, queue)
    second, at_us, threshold, comparisons = _window_question(at, threshold_s, compare)

    def build(reader: ModelReader, second: int) -> Generator[None, None, bytes]:
        end_us = live_end_us(second) if at_us is None else at_us
        yield from ()  # one queue: one slice
        return encoded(reader.queue_kpis(queue, window, end_us, threshold, comparisons))

    key = (queue, window, at_us, threshold, comparisons)
    return await _answer(request, services, "queue_kpis", key, second, build, QUEUE_ANSWERS)


@router.get(
    "/queues/{queue}/intervals",
    summary="Fixed 15- or 30-minute intervals",
    responses=NOT_FOUND,
    response_model=list[dict[str, Any]],
)
async def queue_intervals(
    queue: str,
    request: Request,
    services: ServicesDep,
    size: IntervalSize = "15m",
    start: AtQuery = None,
    end: AtQuery = None,
    threshold_s: ThresholdQuery = None,
) -> Response:
    reader = services.reader
    _known(reader, queue)
    second = second_us(now_us())
    zone = reader.queue_zone(queue)
    # Unset bounds stay unset in the question: live ones move with the second.
    given_start_us = None if start is None else time_param("start", start)
    given_end_us = None if end is None else time_param("end", end)

    def bounds(second: int) -> tuple[int, int]:
        end_us = live_end_us(second) if given_end_us is None else given_end_us
        start_us = local_midnight_us(end_us, zone) if given_start_us is None else given_start_us
        return start_us, end_us

    start_us, end_us = bounds(second)
    if start_us >= end_us:
        raise HTTPException(422, "query parameter 'start' must be before 'end'")
    if end_us - start_us > MAX_INTERVAL_SPAN_S * US_PER_S:
        raise HTTPException(422, "'start' to 'end' may span at most 8 days")
    threshold = threshold_param(threshold_s)

    def build(reader: ModelReader, second: int) -> Generator[None, None, bytes]:
        start_us, end_us = bounds(second)
        objects = yield from reader.intervals_slices(queue, size, start_us, end_us, threshold)
        yield
        return encoded(objects)

    key = (queue, size, given_start_us, given_end_us, threshold)
    # Up to 8 days of intervals (about 1 MB): the default few, not one per queue.
    return await _answer(request, services, "intervals", key, second, build)


def _window_question(
    at: str | None, threshold_s: int | None, compare: str | None
) -> tuple[int, int | None, int | None, tuple[str, ...]]:
    """The clock second answers are built at, and the window question's parsed parameters:
    the window's end (``at``; None for live: the end of the minute of the answer's second),
    threshold and comparisons."""
    second = second_us(now_us())
    at_us = None if at is None else time_param("at", at)
    return second, at_us, threshold_param(threshold_s), compare_param(compare)


async def _answer(
    request: Request,
    services: Services,
    route: str,
    question: Hashable,
    second: int,
    build: Build,
    limit: int = DEFAULT_LIMIT,
) -> Response:
    """The encoded answer to ``question`` as of ``second`` (api/answers.py), built by a reader
    whose clock stands at ``second`` when none is stored; as ``304``, gzip or plain JSON, as
    the request's headers ask (api/representation.py)."""
    answer = await services.answers.awaited(
        route, question, services.model.version, second, lambda: services.reader, build, limit
    )
    return answer_response(answer, request.headers)


def _known(reader: KpiReader, queue: str) -> None:
    if not reader.queue_exists(queue):
        raise HTTPException(404, f"queue {queue!r} has no events and is not configured")
