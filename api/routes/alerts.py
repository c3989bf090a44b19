"""In-service alerts: the active ones, recent transitions, and the rules each queue runs."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from api.alerts.service import RECENT_KEPT, AlertService
from api.deps import ServicesDep
from api.errors import INVALID, NOT_FOUND

# Both routes answer 404 while in-service alerting is off.
router = APIRouter(prefix="/v1/alerts", tags=["alerts"], responses={**INVALID, **NOT_FOUND})

QueueFilter = Annotated[str | None, Query(description="Only this queue's alerts")]


@router.get("", summary="Active alerts (pending, firing) and recent transitions, newest first")
async def alerts(
    services: ServicesDep,
    queue: QueueFilter = None,
    limit: Annotated[int, Query(ge=0, le=RECENT_KEPT, description="Recent transitions")] = 50,
) -> dict[str, Any]:
    snapshot = _service(services.alerts).snapshot(RECENT_KEPT)
    if queue is not None:
        snapshot = {
            part: [a for a in items if a["queue"] == queue] for part, items in snapshot.items()
        }
    snapshot["recent"] = snapshot["recent"][:limit]
    return snapshot


@router.get("/rules", summary="The rules each known queue is evaluated against")
async def rules(services: ServicesDep, queue: QueueFilter = None) -> dict[str, Any]:
    engine = _service(services.alerts).engine
    queues = [queue] if queue is not None else services.reader.queue_names()
    return {"queues": {name: [asdict(rule) for rule in engine.rules(name)] for name in queues}}


def _service(service: AlertService | None) -> AlertService:
    if service is None:
        raise HTTPException(404, "in-service alerting is off (CALLPULSE_ALERTS_ENABLED=false)")
    return service
