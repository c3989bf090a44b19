"""The FastAPI application: routers, error shape, metrics registry, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.alerts.metrics import AlertCollector
from api.auth import install_access, requires_ingest, requires_read, requires_read_or_query
from api.metrics import KpiCollector
from api.routes import agents, events, health, kpis, stream, wallboard, webhooks
from api.routes import alerts as alert_routes
from api.services import Services
from callpulse import __version__

DESCRIPTION = """Real-time contact-centre KPIs: service level, abandonment, waits, handle time,
agents. Figures cover `[start, end)`, with `end` aligned down to the minute. Definitions:
KPIS.md and docs/SEMANTICS.md."""


def create_app(services: Services) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.stop()

    app = FastAPI(
        title="callpulse", version=__version__, description=DESCRIPTION, lifespan=lifespan
    )
    app.state.services = services
    registry = CollectorRegistry()
    registry.register(KpiCollector(services.model, services.reader, services.lag_snapshot))
    if services.alerts is not None:
        registry.register(AlertCollector(services.alerts))
    app.state.registry = registry
    install_access(app, services.settings)
    # Every router names its scope (api/auth.py); tests/unit/test_auth.py checks each route.
    app.include_router(kpis.router, dependencies=[requires_read])
    app.include_router(agents.router, dependencies=[requires_read])
    app.include_router(events.router, dependencies=[requires_ingest])
    webhooks.install(app, services)  # ingest scope; senders' own token carriers (webhooks.py)
    app.include_router(stream.router, dependencies=[requires_read_or_query])  # EventSource
    app.include_router(alert_routes.router, dependencies=[requires_read])
    app.include_router(health.router)  # /healthz, /readyz open; /metrics: metrics_access
    # The page passes its ?access_token= on to the stream; its CSS and JS hold no data.
    app.include_router(wallboard.router, dependencies=[requires_read_or_query])
    wallboard.mount_static(app)
    _install_error_shape(app)
    return app


def _install_error_shape(app: FastAPI) -> None:
    """Every error is JSON: ``{"error": <code>, "message": <what is wrong>, ...}``."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": _code(exc.status_code), "message": str(exc.detail)},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(error) for error in exc.errors()]
        message = "; ".join(f"{p['where']}: {p['message']}" for p in problems)
        return JSONResponse(
            {"error": "invalid_request", "message": message, "problems": problems}, status_code=422
        )


def _problem(error: Any) -> dict[str, str]:
    where = ".".join(str(part) for part in error.get("loc", ()))
    return {"where": where, "message": str(error.get("msg", "invalid"))}


def _code(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        422: "invalid_request",
        503: "unavailable",
    }.get(status, "error")
