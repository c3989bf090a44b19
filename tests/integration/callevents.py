"""Small hand-made contract events for the wallboard and dashboard tests: calls with a chosen
wait and outcome, and agent states, at times relative to now."""

from __future__ import annotations

import itertools
import time
from typing import Any

from stream.kpi.timeutil import US_PER_S, us_to_rfc3339

Event = dict[str, Any]
_ids = itertools.count(1)


def now_us() -> int:
    return int(time.time() * US_PER_S)


def _event(kind: str, ts_us: int, **fields: Any) -> Event:
    event_id = f"t{next(_ids)}-{time.time_ns()}"
    return {"event_id": event_id, "type": kind, "ts": us_to_rfc3339(ts_us), **fields}


def call(
    queue: str, call_id: str, offered_us: int, *, wait_s: float, outcome: str, agent: str = "a1"
) -> list[Event]:
    """A call offered at ``offered_us`` that waits ``wait_s`` then is answered or abandoned;
    outcome ``waiting``: offered only, still in the queue."""
    offered = _event("call.offered", offered_us, queue=queue, call_id=call_id)
    if outcome == "waiting":
        return [offered]
    end_us = offered_us + round(wait_s * US_PER_S)
    if outcome == "answered":
        ending = _event("call.answered", end_us, queue=queue, call_id=call_id, agent_id=agent)
    elif outcome == "abandoned":
        ending = _event("call.abandoned", end_us, queue=queue, call_id=call_id)
    else:
        raise ValueError(f"unknown outcome {outcome!r}")
    return [offered, ending]


def agent_state(agent: str, state: str, queues: list[str], ts_us: int) -> Event:
    return _event("agent.state", ts_us, agent_id=agent, state=state, queues=queues)
