"""The OpenAPI document declares every error a route can answer, with the one error model.

What a route can answer is read from the app's own route table, not from a list kept here:

- a route whose dependencies reach the bearer scheme (``api.auth.bearer``) can answer 401 and 403;
- a path parameter can name nothing: 404;
- a body the route reads is bounded by ``max_body_bytes``: 413;
- a route with a parameter or a body can refuse it: 422.

So a route added without its ``responses=`` fails here, whoever adds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant

from api.auth import bearer, requires_read
from api.main import create_app
from tests.unit.securityfixtures import secured_services

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
REF_PREFIX = "#/components/schemas/"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    dependant: Dependant

    @property
    def guarded(self) -> bool:
        return any(dependency.call is bearer for dependency in _flattened(self.dependant))

    def expected_errors(self) -> set[str]:
        statuses: set[str] = set()
        if self.guarded:
            statuses |= {"401", "403"}
        if self.dependant.path_params:
            statuses.add("404")
        if self.method in BODY_METHODS:
            statuses |= {"413", "422"}
        if self.dependant.path_params or self.dependant.query_params:
            statuses.add("422")
        return statuses


def _flattened(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from _flattened(dependency)


def operations(app: FastAPI) -> Iterator[Operation]:
    """Every documented (method, path) the app routes, with its resolved dependencies."""
    for route in _routes(app):
        dependant = getattr(route, "dependant", None)
        if dependant is None or not getattr(route, "include_in_schema", False):
            continue  # a mount, or FastAPI's own docs pages
        for method in sorted(route.methods - {"HEAD"}):
            yield Operation(method, route.path, dependant)


def _routes(app: FastAPI) -> Iterator[Any]:
    try:  # FastAPI >= 0.16x keeps included routers lazy: flatten them the way it does
        from fastapi.routing import iter_route_contexts
    except ImportError:
        yield from app.routes
        return
    yield from iter_route_contexts(app.routes)


def undocumented(app: FastAPI) -> list[str]:
    """Each error a route can answer that its operation does not declare with the error model."""
    document = app.openapi()
    schemas = document.get("components", {}).get("schemas", {})
    gaps = []
    for operation in operations(app):
        responses = document["paths"][operation.path][operation.method.lower()]["responses"]
        for status in sorted(operation.expected_errors()):
            response = responses.get(status)
            if response is None:
                gaps.append(f"{operation.method} {operation.path}: {status} not declared")
            elif not _is_error_model(response, schemas):
                gaps.append(f"{operation.method} {operation.path}: {status} not the error model")
    return gaps


def _is_error_model(response: dict[str, Any], schemas: dict[str, Any]) -> bool:
    """JSON, and an object that requires string ``error`` and ``message`` (ErrorBody or more)."""
    content = response.get("content", {})
    if set(content) != {"application/json"}:
        return False
    schema = content["application/json"].get("schema", {})
    ref = schema.get("$ref", "")
    schema = schemas.get(ref.removeprefix(REF_PREFIX), {}) if ref else schema
    properties = schema.get("properties", {})
    return {"error", "message"} <= set(schema.get("required", ())) and all(
        properties.get(name, {}).get("type") == "string" for name in ("error", "message")
    )


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(secured_services()[0])


def test_every_error_a_route_can_answer_is_declared_with_the_error_model(app: FastAPI) -> None:
    assert undocumented(app) == []


def test_the_route_table_yields_the_routes_the_checks_rest_on(app: FastAPI) -> None:
    # If the walk found nothing, the test above would pass vacuously.
    found = {(op.method, op.path): op.guarded for op in operations(app)}
    assert found[("GET", "/v1/queues/{queue}/kpis")] is True
    assert found[("POST", "/v1/events")] is True
    assert found[("POST", "/v1/webhooks/twilio")] is True  # its own guard, same bearer scheme
    assert found[("GET", "/metrics")] is True  # guarded when CALLPULSE_METRICS_AUTH=true
    assert found[("GET", "/healthz")] is False


def test_fastapis_own_validation_shape_is_not_documented(app: FastAPI) -> None:
    # Our 422 is {"error", "message", "problems"}: FastAPI's {"detail": [...]} would be a lie.
    assert "HTTPValidationError" not in app.openapi()["components"]["schemas"]


def test_a_route_added_without_error_docs_is_caught() -> None:
    app = create_app(secured_services()[0])
    extra = APIRouter()

    @extra.get("/v1/undocumented/{thing}")
    async def undocumented_route(thing: str) -> dict[str, str]:
        return {"thing": thing}

    app.include_router(extra, dependencies=[requires_read])
    app.openapi_schema = None
    assert sorted(undocumented(app)) == [
        "GET /v1/undocumented/{thing}: 401 not declared",
        "GET /v1/undocumented/{thing}: 403 not declared",
        "GET /v1/undocumented/{thing}: 404 not declared",
        "GET /v1/undocumented/{thing}: 422 not the error model",  # FastAPI's default
    ]
