"""Agents: who is in which state, and per-agent figures."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from api.deps import AtQuery, ReaderDep, WindowQuery, time_param
from api.errors import INVALID, NOT_FOUND

router = APIRouter(prefix="/v1/agents", tags=["agents"], responses=INVALID)


@router.get("", summary="Every known agent's current state")
async def agents(reader: ReaderDep, at: AtQuery = None) -> dict[str, Any]:
    return {"agents": reader.agents(time_param("at", at))}


@router.get("/{agent_id}/kpis", summary="One agent's figures over a window", responses=NOT_FOUND)
async def agent_kpis(
    agent_id: str, reader: ReaderDep, window: WindowQuery = "15m", at: AtQuery = None
) -> dict[str, Any]:
    figures = reader.agent_kpis(agent_id, window, time_param("at", at))
    if figures is None:
        raise HTTPException(404, f"agent {agent_id!r} has no events")
    return figures
