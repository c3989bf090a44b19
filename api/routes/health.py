"""Liveness, readiness and the Prometheus exposition."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.auth import metrics_access
from api.deps import ServicesDep
from api.errors import AUTH

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: broker reachable and the view recovered",
    responses={503: {"description": "Not ready: `status` and each check's outcome"}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    feed = services.feed
    checks = {
        "broker": feed is None or feed.connected,
        "view_recovered": feed is None or feed.ready.is_set(),
    }
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses=AUTH,  # only when CALLPULSE_METRICS_AUTH=true
    dependencies=[Depends(metrics_access)],  # open unless CALLPULSE_METRICS_AUTH=true
)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
