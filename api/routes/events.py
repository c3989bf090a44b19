"""Event ingest: a JSON array or NDJSON body, validated per event, published to Kafka."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from api.deps import ServicesDep
from api.errors import TOO_LARGE, UNAVAILABLE, IngestRefusalBody, Responses, error_response
from callpulse.pseudonym import pseudonymiser_for
from stream.decode import Rejection, decode_body
from stream.kpi.timeutil import US_PER_S

router = APIRouter(prefix="/v1", tags=["ingest"])

MESSAGE_DETAIL_MAX = 200  # the message quotes the first refusal; `errors` has them all
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")

INGEST_RESPONSES: Responses = {
    202: {"description": 'Every event accepted: `{"accepted": n}`'},
    **TOO_LARGE,
    422: error_response(
        "Some events refused (`invalid_events`): each one's `index` and `reason`; "
        "the valid ones of the batch are still accepted",
        IngestRefusalBody,
    ),
    **UNAVAILABLE,
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
    return JSONResponse(refusal_body(len(accepted), rejections), status_code=422)


def refusal_body(accepted: int, rejections: list[Rejection]) -> dict[str, Any]:
    """The 422 answer: the error shape every 4xx has, plus each refused event's detail."""
    errors = sorted(
        ({"index": r.index, "reason": r.reason, "detail": r.detail} for r in rejections),
        key=lambda e: (e["index"] is None, e["index"] or 0),
    )
    first = errors[0]
    reason = f"{first['reason']}: {_clipped(str(first['detail']))}"
    if first["index"] is None:  # the body as a whole did not parse: no event was read
        message = f"the body was refused: {reason}"
    else:
        message = (
            f"{len(errors)} of {accepted + len(errors)} event(s) refused, {accepted} accepted; "
            f"first, event {first['index']}: {reason}"
        )
    return {
        "error": "invalid_events",
        "message": message,
        "accepted": accepted,
        "rejected": len(errors),
        "errors": errors,
    }


def _clipped(text: str, limit: int = MESSAGE_DETAIL_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
