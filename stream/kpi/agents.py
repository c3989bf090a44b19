"""Agent states over time: the state of every agent at any moment of the retention.

An agent's history keeps its recent state changes in time order, so "agents available at the
end of this window" is exact for past windows too, and late or reordered ``agent.state`` events
simply take their place in the history. The worker stores it in chunks of one hour of event
time (``chunk_start_us``): a write re-encodes the hour it changed, not the agent's whole
retained history, and an event's duplicate (same event, same time) always meets it in the
chunk it landed in. Readers join the chunks back into one history.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Iterable
from typing import Any

from stream.kpi.timeutil import US_PER_S

AGENT_STATES = ("logged_out", "available", "on_call", "acw", "paused")
HISTORY_CHUNK_US = 3600 * US_PER_S
_TIME = operator.itemgetter(0)  # a change's ts_us  # an hour: a few dozen changes of a busy agent

AgentRecord = dict[str, Any]
# One change: [ts_us, event_id, state, queues]; sorted by (ts_us, event_id).
Transition = list[Any]


def chunk_start_us(ts_us: int) -> int:
    """Start of the history chunk a change at ``ts_us`` belongs to (UTC hours)."""
    return ts_us - ts_us % HISTORY_CHUNK_US


def new_agent_record(agent_id: str) -> AgentRecord:
    return {"agent_id": agent_id, "changes": []}


def apply_agent_event(record: AgentRecord, event: dict[str, Any]) -> bool:
    """Insert the change in time order; False when this event_id is already there."""
    ts_us, event_id = event["ts_us"], event["event_id"]
    change: Transition = [ts_us, event_id, event["state"], list(event.get("queues") or [])]
    changes: list[Transition] = record["changes"]
    if not changes or (last := changes[-1])[0] < ts_us or (last[0] == ts_us and last[1] < event_id):
        changes.append(change)  # the latest change (the usual case): no search
        return True
    # Sorted by (ts_us, event_id): found by time, then among changes at the same time by id.
    index = bisect.bisect_left(changes, ts_us, key=_TIME)
    while index < len(changes) and changes[index][0] == ts_us and changes[index][1] < event_id:
        index += 1
    if index < len(changes) and changes[index][0] == ts_us and changes[index][1] == event_id:
        return False
    changes.insert(index, change)
    return True


def state_at(record: AgentRecord, at_us: int) -> tuple[str, list[str]] | None:
    """State and queues from the latest change strictly before ``at_us``."""
    changes: list[Transition] = record["changes"]
    index = bisect.bisect_left(changes, at_us, key=_TIME)
    if index == 0:
        return None
    _, _, state, queues = changes[index - 1]
    return state, queues


def count_states(records: Iterable[AgentRecord], at_us: int, queue: str | None) -> dict[str, int]:
    """Agents per state at ``at_us`` for one queue (None: every agent), plus ``logged_in``."""
    counts = dict.fromkeys(AGENT_STATES, 0)
    for record in records:
        current = state_at(record, at_us)
        if current is None:
            continue
        state, queues = current
        if queue is None or queue in queues:
            counts[state] = counts.get(state, 0) + 1
    counts["logged_in"] = sum(n for state, n in counts.items() if state != "logged_out")
    return counts
