"""The per-ticket state machine: non-voice work items (email, chat...) from open to resolved.

Like a call's state, a ticket's state remembers the events it has seen, so a duplicate or a
resend is a no-op, and the figures that need two events (first response time, time to resolve)
are added once, when the second one arrives, whatever the order. A ticket is identified by
``(queue, ticket_id)``; per ticket only the first ``ticket.opened``, ``ticket.first_response``
and ``ticket.resolved`` count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from stream.kpi.accumulator import KpiAccumulator
from stream.kpi.timeutil import US_PER_S

TicketState = dict[str, Any]
Event = dict[str, Any]

UNKNOWN_CHANNEL = "unknown"
_SLOTS = {"ticket.opened": "open", "ticket.first_response": "fr", "ticket.resolved": "res"}


class TicketSink(Protocol):
    def queue_bucket(self, ts_us: int) -> KpiAccumulator: ...


def new_ticket_state(ticket_id: str) -> TicketState:
    # open/fr/res: (ts_us, channel or None); *_done: the two-event figure was added. Tuples,
    # replaced and never appended to, as in a call's state (stream.kpi.callstate).
    return {"tid": ticket_id, "ids": (), "open": None, "fr": None, "res": None,
            "fr_done": False, "res_done": False}  # fmt: skip


def apply_ticket_event(state: TicketState, event: Event, sink: TicketSink) -> bool:
    """Fold ``event`` into ``state`` (in place); False for an ``event_id`` already seen."""
    if event["event_id"] in state["ids"]:
        return False
    state["ids"] = (*state["ids"], event["event_id"])
    slot = _SLOTS[event["type"]]
    if state[slot] is None:
        ts_us: int = event["ts_us"]
        channel = event.get("channel")
        state[slot] = (ts_us, channel if isinstance(channel, str) else None)
        bucket = sink.queue_bucket(ts_us)
        if slot == "open":
            bucket.tickets_opened += 1
        elif slot == "res":
            contacts = event.get("contacts")
            bucket.add_ticket_resolved(contacts if isinstance(contacts, int) else None)
    _emit_durations(state, sink)
    return True


def ticket_channel(state: TicketState) -> str:
    """The opening's channel, else the first response's, else ``unknown``: order-independent."""
    for slot in ("open", "fr"):
        if state[slot] is not None and state[slot][1] is not None:
            return str(state[slot][1])
    return UNKNOWN_CHANNEL


def _emit_durations(state: TicketState, sink: TicketSink) -> None:
    opened = state["open"]
    if opened is None:
        return
    if state["fr"] is not None and not state["fr_done"]:
        state["fr_done"] = True
        at_us = state["fr"][0]
        sink.queue_bucket(at_us).add_first_response(ticket_channel(state), _since(opened, at_us))
    if state["res"] is not None and not state["res_done"]:
        state["res_done"] = True
        at_us = state["res"][0]
        sink.queue_bucket(at_us).add_time_to_resolve(_since(opened, at_us))


def _since(opened: Sequence[Any], at_us: int) -> float:
    """Seconds from the opening (never negative: a clock skew is not a negative duration)."""
    return max(at_us - int(opened[0]), 0) / US_PER_S


def ticket_finished(state: TicketState) -> bool:
    return state["res"] is not None
