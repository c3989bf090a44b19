"""Fuzzing the HTTP API from its own OpenAPI document (schemathesis).

Every operation the document lists gets requests generated from its parameters and bodies,
valid and invalid (schemathesis' positive and negative modes), against the in-process app over
the hand-made scenario of ``tests/unit/apifixtures.py``, with tokens configured. The checks:

- never a 5xx;
- every 4xx is JSON ``{"error": <code>, "message": <text>}`` (README, "The API");
- a 2xx body matches the response schema the document declares, and its content type.

Ingest publishes to a recording publisher (``tests/unit/securityfixtures.py``), the only
stand-in: there is no broker in unit tests. ``GET /v1/stream`` is left out: a valid request
opens a Server-Sent Events stream that never ends; its parameter errors are covered in
``tests/unit/test_api_errors.py`` and it runs for real in the integration tests.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from callpulse.tokens import entry_for
from tests.unit.securityfixtures import TOKEN_LINES, secured_services

# Every scope, so a generated request is refused for what it carries, not for who sends it.
TOKEN = "cp_fuzz-every-scope-0123456789abcdefghijklmnopqrstu"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SERVICES, PUBLISHER = secured_services(
    tokens=[*TOKEN_LINES, entry_for(TOKEN, ["read", "ingest", "admin"]).line],
    max_body_bytes=64 * 1024,  # small, so generated bodies can cross it (413)
)
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", create_app(SERVICES)).exclude(
    path="/v1/stream"
)


@schemathesis.serializer("application/x-ndjson")
def _ndjson(_: Any, value: Any) -> bytes:
    """The document says an NDJSON body is a string; negative cases may be any JSON value."""
    text = value if isinstance(value, str) else json.dumps(value)  # json: any integer size
    return text.encode("utf-8", "surrogatepass")


CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    status_code_conformance,  # every status a route answers is in the document
]
HEALTH = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
statuses: dict[str, set[int]] = {}


# Names the scenario knows: a random path parameter is almost never one, so half the cases
# use these instead and reach the 200 paths of the per-queue and per-agent operations.
KNOWN = {"queue": "sales", "agent_id": "a1"}


def check_case(case: Any) -> None:
    for name, value in (case.path_parameters or {}).items():
        if name in KNOWN and len(str(value)) % 2 == 0:
            case.path_parameters[name] = KNOWN[name]
    response = case.call(headers=AUTH)
    case.validate_response(response, checks=CHECKS, headers=AUTH)
    statuses.setdefault(case.operation.label, set()).add(response.status_code)
    if 400 <= response.status_code < 500:
        content_type = response.headers.get("content-type") or [""]  # a list per header
        assert content_type[0].startswith("application/json"), (
            f"{case.operation.label} {response.status_code}: {response.text[:200]}"
        )
        body = response.json()
        assert_error_shape(body)
        _check_per_event_refusal(case, response.status_code, body)


def assert_error_shape(body: Any) -> None:
    assert isinstance(body.get("error"), str), body
    assert body["error"], body
    assert isinstance(body.get("message"), str), body
    assert body["message"], body


def _check_per_event_refusal(case: Any, status: int, body: Any) -> None:
    """Ingest's 422 (CONTRACT.md): each refused event's index and reason, none unexplained."""
    if not (case.operation.label == "POST /v1/events" and status == 422):
        return
    assert body["error"] == "invalid_events", body
    assert body["rejected"] == len(body["errors"]) >= 1, body
    for error in body["errors"]:
        assert isinstance(error["reason"], str), body
        assert isinstance(error["detail"], str), body
        assert error["detail"], body


@SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=HEALTH)
def test_every_operation_answers_without_5xx_and_with_json_errors(case: Any) -> None:
    check_case(case)


@pytest.mark.slow
@SCHEMA.parametrize()
@settings(max_examples=300, deadline=None, suppress_health_check=HEALTH)
def test_soak_every_operation(case: Any) -> None:
    check_case(case)


def test_the_document_lists_every_route_the_fuzzer_covers() -> None:
    # A route missing from the document would never be fuzzed: pin the list.
    operations = {op.label for op in (result.ok() for result in SCHEMA.get_all_operations())}
    assert {
        "GET /v1/kpis",
        "GET /v1/queues/{queue}/kpis",
        "GET /v1/queues/{queue}/intervals",
        "GET /v1/agents",
        "GET /v1/agents/{agent_id}/kpis",
        "POST /v1/events",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
    } <= operations


@pytest.mark.parametrize(
    ("body", "content_type", "said"),
    [
        # one bad item among good ones: the count, the index and the reason are named
        (b'[{"event_id": "x"}, 1]', "application/json", ["2 of 2", "event 0", "missing_field"]),
        (b"[1]", "application/json", ["1 of 1", "event 0", "not_an_object"]),
        (b"[", "application/json", ["the body", "invalid_json"]),  # no event was read
        (b'{"a": 1}\n{x', "application/x-ndjson", ["2 of 2", "event 0"]),
    ],
)
def test_ingest_refusals_also_carry_error_and_message(
    body: bytes, content_type: str, said: list[str]
) -> None:
    from tests.unit.apifixtures import client_for

    client = client_for(SERVICES, raise_server_exceptions=False)
    headers = {**AUTH, "content-type": content_type}
    response = client.post("/v1/events", content=body, headers=headers)
    assert response.status_code == 422
    answer = response.json()
    assert_error_shape(answer)
    assert answer["error"] == "invalid_events"
    for words in said:
        assert words in answer["message"], answer["message"]
    assert answer["rejected"] == len(answer["errors"])
