"""The per-call state machine: each call event changes the figures at most once.

Kafka delivers at least once, PBXs resend and reorder. The state of one call in one queue
remembers which events it has seen and which contributions it has already made, so a duplicate
is a no-op, and a contribution that needs two events (a wait derived from the offered time, the
span a call spent waiting) is made once, when the second of them arrives, whatever the order.

The state is a plain JSON-able dict because it lives in a changelog-backed table. Its
sequences are tuples, replaced rather than appended to: a stored state can be copied with a
shallow ``dict()``, and the garbage collector stops tracking a tuple of plain values (one
object less to scan per stored state). Recovered from the changelog they are lists, which
nothing mutates either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from stream.kpi.accumulator import KpiAccumulator
from stream.kpi.config import QueueConfig
from stream.kpi.contacts import ContactFacts
from stream.kpi.timeutil import US_PER_S

CallState = dict[str, Any]
Event = dict[str, Any]

# Outcomes that end a call's wait in the queue, with the state key each is kept under.
_WAIT_OUTCOMES = {"call.answered": "ans", "call.abandoned": "abn", "call.exited": "ext"}


class BucketSink(Protocol):
    """Where contributions go: accumulators by event time, and the live waiting set."""

    def queue_bucket(self, ts_us: int) -> KpiAccumulator: ...

    def agent_bucket(self, agent_id: str, ts_us: int) -> KpiAccumulator: ...

    def contact_facts(self, ts_us: int) -> ContactFacts: ...

    def waiting_started(self, call_id: str, offered_us: int) -> None: ...

    def waiting_ended(self, call_id: str, offered_us: int, ended_us: int) -> None: ...


def new_call_state(call_id: str) -> CallState:
    return {
        "cid": call_id,
        "ids": (),
        "off": None,
        "ans": None,
        "abn": None,
        "ext": None,
        "ans_w": False,
        "abn_w": False,
        "wait_done": False,
        "res": False,
    }


def apply_call_event(state: CallState, event: Event, sink: BucketSink, config: QueueConfig) -> bool:
    """Fold ``event`` into ``state`` (in place), sending what it changes to ``sink``.

    Returns False for a duplicate (an ``event_id`` this call has seen), which changes nothing.
    """
    if event["event_id"] in state["ids"]:
        return False
    state["ids"] = (*state["ids"], event["event_id"])
    ts_us: int = event["ts_us"]
    kind: str = event["type"]
    if kind == "call.offered":
        _on_offered(state, event, sink)
    elif kind in _WAIT_OUTCOMES:
        _on_wait_outcome(state, event, sink, _WAIT_OUTCOMES[kind])
    elif kind == "call.transferred":
        sink.queue_bucket(ts_us).transferred += 1
        sink.agent_bucket(event["agent_id"], ts_us).transferred += 1
    elif kind == "call.ended":
        talk_s, hold_s = float(event["talk_s"]), float(event.get("hold_s", 0.0))
        sink.queue_bucket(ts_us).add_ended(talk_s, hold_s)
        sink.agent_bucket(event["agent_id"], ts_us).add_ended(talk_s, hold_s)
    elif kind == "call.wrapup_ended":
        acw_s = float(event["acw_s"])
        sink.queue_bucket(ts_us).add_wrapup(acw_s)
        sink.agent_bucket(event["agent_id"], ts_us).add_wrapup(acw_s)
    elif kind == "call.resolved" and not state["res"]:
        state["res"] = True
        resolved, first_contact = bool(event["resolved"]), event.get("first_contact")
        sink.queue_bucket(ts_us).add_resolution(resolved=resolved, first_contact=first_contact)
        flag = first_contact if isinstance(first_contact, bool) else None
        sink.contact_facts(ts_us).resolved[state["cid"]] = [ts_us, resolved, flag]
    _emit_waits(state, sink, config)
    return True


def _on_offered(state: CallState, event: Event, sink: BucketSink) -> None:
    if state["off"] is not None:
        return  # a second offer of the same call to the same queue: a resend with a new id
    state["off"] = event["ts_us"]
    sink.queue_bucket(event["ts_us"]).offered += 1
    caller = event.get("caller")
    if isinstance(caller, str):  # the repeat-caller rule needs it (stream.kpi.contacts)
        sink.contact_facts(event["ts_us"]).offered[state["cid"]] = [event["ts_us"], caller]


def _on_wait_outcome(state: CallState, event: Event, sink: BucketSink, key: str) -> None:
    if state[key] is not None:
        return
    ts_us = event["ts_us"]
    wait_s = event.get("wait_s")
    state[key] = (ts_us, None if wait_s is None else float(wait_s))
    bucket = sink.queue_bucket(ts_us)
    if key == "ans":
        bucket.answered += 1
        sink.agent_bucket(event["agent_id"], ts_us).answered += 1
        sink.contact_facts(ts_us).answered[state["cid"]] = ts_us
    elif key == "abn":
        bucket.abandoned += 1
    else:
        bucket.exited += 1


def _emit_waits(state: CallState, sink: BucketSink, config: QueueConfig) -> None:
    """Make the contributions that needed two events, once both are known."""
    offered_us: int | None = state["off"]
    for key, flag in (("ans", "ans_w"), ("abn", "abn_w")):
        outcome = state[key]
        if outcome is None or state[flag]:
            continue
        wait_s = _wait_s(outcome, offered_us)
        if wait_s is None:
            continue
        state[flag] = True
        bucket = sink.queue_bucket(outcome[0])
        if key == "ans":
            bucket.answered_waits.add(wait_s)
        else:
            bucket.add_abandoned_wait(wait_s, config.short_abandon_s)
    if offered_us is None or state["wait_done"]:
        return
    ends = [state[key][0] for key in ("ans", "abn", "ext") if state[key] is not None]
    if ends:
        state["wait_done"] = True
        sink.waiting_ended(state["cid"], offered_us, min(ends))
    elif not state.get("live"):
        state["live"] = True
        sink.waiting_started(state["cid"], offered_us)


def _wait_s(outcome: Sequence[Any], offered_us: int | None) -> float | None:
    """The event's own ``wait_s``, else the time since the offer (never negative)."""
    if outcome[1] is not None:
        return float(outcome[1])
    if offered_us is None:
        return None
    ended_us: int = outcome[0]
    return max(ended_us - offered_us, 0) / US_PER_S


def call_wait_finished(state: CallState) -> bool:
    """True once the call has left the queue (answered, abandoned or exited)."""
    return any(state[key] is not None for key in ("ans", "abn", "ext"))
