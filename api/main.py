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

from api.metrics import KpiCollector
from api.routes import agents, events, health, kpis, stream
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
    app.state.registry = registry
    for module in (kpis, agents, events, stream, health):
        app.include_router(module.router)
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
