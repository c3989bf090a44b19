"""Webhooks from cloud contact centres: Twilio TaskRouter, Amazon Connect, any JSON (mapped).

Each body becomes payloads, each payload maps whole or is refused whole
(``callpulse.adapters``). Mapped events are pseudonymised and published before the answer;
refused payloads are listed in a 422 (``index``, ``reason``, ``problems``), go to the
dead-letter topic without their content (it may hold personal data: the sender has it), and
are counted in ``callpulse_adapter_inputs_total{adapter, outcome}``.

Senders that cannot send a bearer token give it the way they can: Twilio as the password of
the callback URL's basic auth (``https://x:<token>@host/v1/webhooks/twilio``), Firehose as
its access key (``X-Amz-Firehose-Access-Key``). The token needs the ``ingest`` scope.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from api.auth import BearerCredentials, authorise
from api.deps import ServicesDep
from api.errors import (
    AUTH,
    NOT_FOUND,
    TOO_LARGE,
    UNAVAILABLE,
    Responses,
    WebhookRefusalBody,
    error_response,
)
from api.services import Services
from callpulse.adapters.config import AdaptersConfig, load_adapters_config
from callpulse.adapters.core import Event, Gate, IngestStats, Refusal, split_outcomes
from callpulse.adapters.payloads import AdapterContext, Source, admit_all, body_documents, inputs_of
from callpulse.adapters.publish import Sink
from callpulse.adapters.twilio import TaskTimeline
from callpulse.pseudonym import pseudonymiser_for
from callpulse.tokens import INGEST
from stream.decode import Rejection

FORM = "application/x-www-form-urlencoded"
SOURCES: tuple[Source, ...] = ("twilio", "amazon-connect", "generic")


async def webhook_access(request: Request, credentials: BearerCredentials) -> None:
    """``ingest`` scope, from a bearer token, Firehose's access key or basic auth's password."""
    token = credentials.credentials if credentials else None
    token = token or request.headers.get("x-amz-firehose-access-key") or _basic_password(request)
    authorise(request, INGEST, token)


def _basic_password(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        _, colon, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return password if colon and password else None


router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@dataclass
class WebhookState:
    config: AdaptersConfig
    timeline: TaskTimeline = field(default_factory=TaskTimeline)
    stats: dict[str, IngestStats] = field(default_factory=dict)
    sink: Sink | None = None  # tests put a recording sink here; else Kafka via the publisher

    def sink_for(self, services: Services) -> Sink:
        if self.sink is not None:
            return self.sink
        if services.publisher is None:
            raise HTTPException(503, "webhooks are not connected to Kafka")
        return PublisherSink(services)


class PublisherSink:
    """Through the API's own publisher, as ``POST /v1/events`` publishes: callers first
    pseudonymised, refusals to the dead-letter topic (their detail names the webhook)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def send(
        self, events: Sequence[Event], refusals: Sequence[Refusal], *, source: str
    ) -> None:
        publisher = self.services.publisher
        assert publisher is not None  # sink_for checked
        pseudonymise = pseudonymiser_for(self.services.settings)
        private = [pseudonymise.event(dict(event)) for event in events]
        rejections = [
            pseudonymise.rejection(
                Rejection(r.reason, f"{source}: {r.detail}", raw=r.raw, index=r.index)
            )
            for r in refusals
        ]
        await publisher.publish(private, rejections, now_s=time.time())


class WebhookCollector(Collector):
    """Inputs per adapter and outcome, events published per adapter: read at scrape time."""

    def __init__(self, state: WebhookState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        inputs = CounterMetricFamily(
            "callpulse_adapter_inputs",
            "Webhook payloads by adapter and outcome (mapped, skipped, refused)",
            labels=["adapter", "outcome"],
        )
        events = CounterMetricFamily(
            "callpulse_adapter_events", "Events published by webhook adapters", labels=["adapter"]
        )
        for adapter, stats in sorted(self.state.stats.items()):
            skipped, refused = sum(stats.skipped.values()), sum(stats.refused.values())
            inputs.add_metric([adapter, "mapped"], stats.inputs - skipped - refused)
            inputs.add_metric([adapter, "skipped"], skipped)
            inputs.add_metric([adapter, "refused"], refused)
            events.add_metric([adapter], stats.events)
        yield inputs
        yield events


def install(app: FastAPI, services: Services) -> None:
    """The webhook routes, their state and metrics (a bad adapters file stops the start)."""
    state = WebhookState(load_adapters_config(services.settings.adapters_config))
    app.state.webhooks = state
    app.state.registry.register(WebhookCollector(state))
    app.include_router(router, dependencies=[Depends(webhook_access)], responses=AUTH)


RESPONSES: Responses = {
    202: {"description": "Every payload mapped (or skipped as carrying no KPI)"},
    400: error_response("A gzip body that does not inflate (`bad_request`)"),
    **TOO_LARGE,
    422: error_response(
        "Some payloads refused (`unmappable`): each one's `index`, `reason`, `problems`",
        WebhookRefusalBody,
    ),
    **UNAVAILABLE,
}


@router.post("/twilio", status_code=202, responses=RESPONSES, summary="Twilio TaskRouter callback")
async def twilio(request: Request, services: ServicesDep) -> JSONResponse:
    """A TaskRouter EventCallbackUrl request (form-encoded or JSON), or Event Streams events."""
    return await _handle(request, services, "twilio")


@router.post(
    "/amazon-connect", status_code=202, responses=RESPONSES, summary="Amazon Connect records"
)
async def amazon_connect(request: Request, services: ServicesDep) -> JSONResponse:
    """Contact records: JSON, an array, NDJSON, or a Firehose HTTP endpoint delivery."""
    return await _handle(request, services, "amazon-connect")


@router.post(
    "/generic/{mapping}",
    status_code=202,
    responses={**RESPONSES, **NOT_FOUND},
    summary="JSON through a mapping",
)
async def generic(mapping: str, request: Request, services: ServicesDep) -> JSONResponse:
    """Any JSON payload(s), mapped by the named mapping of the adapters configuration."""
    if mapping not in _state(request).config.generic:
        raise HTTPException(404, f"no generic mapping {mapping!r} is configured")
    return await _handle(request, services, "generic", mapping)


def _state(request: Request) -> WebhookState:
    state: WebhookState = request.app.state.webhooks
    return state


async def _handle(
    request: Request, services: ServicesDep, source: Source, mapping: str | None = None
) -> JSONResponse:
    state = _state(request)
    body = await _body(request, services.settings.max_body_bytes)
    form = request.headers.get("content-type", "").split(";")[0].strip().lower() == FORM
    context = AdapterContext(state.config, state.timeline)
    stats = IngestStats()
    inputs = inputs_of(source, body_documents(body, form=form), context, mapping)
    outcomes = admit_all(inputs, Gate(services.validator), stats)
    events, refusals = split_outcomes(outcomes)
    digest = hashlib.sha256(body).hexdigest()[:16]
    kept = [_without_content(r, source, digest) for r in refusals]
    await state.sink_for(services).send(events, kept, source=f"webhook:{source}")
    adapter = f"generic:{mapping}" if mapping else source
    _merge(state.stats.setdefault(adapter, IngestStats()), stats)
    return _answer(request, stats, refusals, len(outcomes))


def _without_content(refusal: Refusal, source: str, digest: str) -> Refusal:
    raw = f"<{source} payload {refusal.index} not kept (may hold personal data); body {digest}>"
    return Refusal(refusal.reason, refusal.problems, refusal.index, raw)


def _merge(total: IngestStats, part: IngestStats) -> None:
    total.inputs += part.inputs
    total.events += part.events
    total.skipped.update(part.skipped)
    total.refused.update(part.refused)


def _answer(
    request: Request, stats: IngestStats, refusals: list[Refusal], count: int
) -> JSONResponse:
    content: dict[str, Any] = {
        "inputs": stats.inputs,
        "events": stats.events,
        "skipped": dict(stats.skipped),
    }
    firehose_id = request.headers.get("x-amz-firehose-request-id")
    if firehose_id:  # Firehose reads its own two fields and nothing else
        content.update(requestId=firehose_id, timestamp=int(time.time() * 1000))
    if not refusals:
        return JSONResponse(content, status_code=200 if firehose_id else 202)
    message = f"{len(refusals)} of {count} payload(s) refused: " + "; ".join(
        f"[{r.index}] {r.detail}" for r in refusals[:5]
    )
    content.update(
        error="unmappable",
        message=message,
        refused=[r.to_json() for r in refusals],
    )
    if firehose_id:
        content["errorMessage"] = message
    return JSONResponse(content, status_code=422)


async def _body(request: Request, limit: int) -> bytes:
    """The body, at most ``limit`` bytes, gunzipped (Firehose may compress) within the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body exceeds {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if request.headers.get("content-encoding", "").lower() != "gzip":
        return body
    inflater = zlib.decompressobj(wbits=31)
    try:
        inflated = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise HTTPException(400, "the body is not valid gzip") from None
    if len(inflated) > limit:
        raise HTTPException(413, f"request body exceeds {limit} bytes once decompressed")
    return inflated
