"""Server-Sent Events: KPI snapshots pushed to wallboards as the figures change, and alert
transitions (``alert`` events) as they happen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from api.answers import Answer, second_us
from api.deps import ServicesDep, ThresholdQuery, WindowQuery, now_us, threshold_param
from api.errors import INVALID
from api.views import ModelReader
from stream.kpi.windows import live_end_us

router = APIRouter(prefix="/v1", tags=["stream"], responses=INVALID)

KEEPALIVE_S = 15.0
STREAM_ANSWERS = 32  # distinct (window, queues, threshold) subscriptions kept encoded


@router.get(
    "/stream",
    summary="Server-Sent Events: `kpis` snapshots as figures change, `alert` transitions",
    response_class=StreamingResponse,
)
async def stream(
    request: Request,
    services: ServicesDep,
    window: WindowQuery = "15m",
    queues: Annotated[
        str | None, Query(description="Comma-separated queue names (default: all)")
    ] = None,
    threshold_s: ThresholdQuery = None,
) -> StreamingResponse:
    wanted = {q for q in (queues or "").split(",") if q} or None

    threshold = threshold_param(threshold_s)

    async def events() -> AsyncIterator[bytes]:
        seen_version = -1
        seen_alert = services.alerts.sequence if services.alerts else 0
        idle_s = 0.0
        yield b"retry: 2000\n\n"
        while not await request.is_disconnected():
            model = services.model
            alerts, seen_alert = _alerts_since(services, seen_alert, wanted)
            for transition in alerts:
                yield _sse("alert", transition)
            snapshot = None
            if model.version != seen_version:
                snapshot = _snapshot(services, window, wanted, threshold)
            # The answer's own version counts: one of an earlier version (a refresh has not
            # caught up yet, api/answers.py) is followed by the newer one at a later look.
            if snapshot is not None and snapshot.version != seen_version:
                seen_version = snapshot.version
                idle_s = 0.0
                yield snapshot.body
            elif idle_s >= KEEPALIVE_S:
                idle_s = 0.0
                yield b": keepalive\n\n"
            await asyncio.sleep(services.settings.sse_interval_s)
            idle_s += services.settings.sse_interval_s

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _snapshot(
    services: ServicesDep, window: str, wanted: set[str] | None, threshold_s: int | None
) -> Answer:
    """The ``kpis`` event as of this second, built once for every subscriber asking the same
    (api/answers.py): a thousand wallboards cost one snapshot, not a thousand."""

    def build(reader: ModelReader, second: int) -> Generator[None, None, bytes]:
        snapshot = yield from reader.centre_kpis_slices(window, live_end_us(second), threshold_s)
        if wanted is not None:
            snapshot["queues"] = [q for q in snapshot["queues"] if q["queue"] in wanted]
        yield
        return _sse("kpis", snapshot)

    question = (window, frozenset(wanted) if wanted is not None else None, threshold_s)
    return services.answers.answer(
        "stream",
        question,
        services.model.version,
        second_us(now_us()),
        lambda: services.reader,
        build,
        STREAM_ANSWERS,
    )


def _alerts_since(
    services: ServicesDep, sequence: int, wanted: set[str] | None
) -> tuple[list[dict[str, Any]], int]:
    """Alert transitions (api/alerts) after ``sequence`` for the wanted queues, and the
    sequence reached. A client learns the alerts already active from ``GET /v1/alerts``."""
    if services.alerts is None:
        return [], sequence
    new = services.alerts.since(sequence)
    return [t for t in new if wanted is None or t["queue"] in wanted], services.alerts.sequence


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
