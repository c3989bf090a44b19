"""Event ingest: a JSON array or NDJSON body, validated per event, published to Kafka."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from api.deps import ServicesDep
from callpulse.pseudonym import pseudonymiser_for
from stream.decode import Rejection, decode_body
from stream.kpi.timeutil import US_PER_S

router = APIRouter(prefix="/v1", tags=["ingest"])

NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")

INGEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": 'Every event accepted: `{"accepted": n}`'},
    413: {"description": "Body larger than the configured limit"},
    422: {
        "description": "Some events refused: each one's `index` and `reason`; "
        "the valid ones of the batch are still accepted"
    },
    503: {"description": "Kafka unavailable: nothing was accepted"},
}


@router.post(
    "/events",
    status_code=202,
    responses=INGEST_RESPONSES,
    summary="Ingest call events (JSON array or NDJSON)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def ingest_events(request: Request, services: ServicesDep) -> JSONResponse:
    body = await _bounded_body(request, services.settings.max_body_bytes)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    candidates, rejections = decode_body(body, ndjson=content_type in NDJSON_TYPES)
    now_s = time.time()
    # Callers are pseudonymised before anything is published: no raw caller reaches a topic.
    pseudonymise = pseudonymiser_for(services.settings)
    accepted: list[dict[str, Any]] = []
    for index, candidate in candidates:
        result = services.validator.validate(candidate, now_us=int(now_s * US_PER_S))
        if isinstance(result, Rejection):
            rejections.append(replace(result, index=index))
        else:
            accepted.append(pseudonymise.event(candidate))  # type: ignore[arg-type]  # an object
    rejections = [pseudonymise.rejection(r) for r in rejections]
    if services.publisher is None:
        raise HTTPException(503, "ingest is not connected to Kafka")
    await services.publisher.publish(accepted, rejections, now_s=now_s)
    if not rejections:
        return JSONResponse({"accepted": len(accepted)}, status_code=202)
    errors = sorted(
        ({"index": r.index, "reason": r.reason, "detail": r.detail} for r in rejections),
        key=lambda e: (e["index"] is None, e["index"] or 0),
    )
    return JSONResponse(
        {"accepted": len(accepted), "rejected": len(rejections), "errors": errors}, status_code=422
    )


async def _bounded_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
