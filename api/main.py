"""The FastAPI application: routers, error shape, metrics registry, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from api.alerts.metrics import AlertCollector
from api.auth import install_access, requires_ingest, requires_read, requires_read_or_query
from api.errors import AUTH, install_error_shape, install_json_error_docs
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
    # A guarded router also documents the guard's 401 and 403 (tests/unit/test_openapi_errors.py).
    app.include_router(kpis.router, dependencies=[requires_read], responses=AUTH)
    app.include_router(agents.router, dependencies=[requires_read], responses=AUTH)
    app.include_router(events.router, dependencies=[requires_ingest], responses=AUTH)
    webhooks.install(app, services)  # ingest scope; senders' own token carriers (webhooks.py)
    # EventSource cannot set headers: the stream also takes ?access_token=.
    app.include_router(stream.router, dependencies=[requires_read_or_query], responses=AUTH)
    app.include_router(alert_routes.router, dependencies=[requires_read], responses=AUTH)
    app.include_router(health.router)  # /healthz, /readyz open; /metrics: metrics_access
    # The page passes its ?access_token= on to the stream; its CSS and JS hold no data.
    app.include_router(wallboard.router, dependencies=[requires_read_or_query], responses=AUTH)
    wallboard.mount_static(app)
    install_error_shape(app)
    install_json_error_docs(app)
    return app
