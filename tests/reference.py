"""Independent reference calculation of the KPI object, straight from raw events.

A test oracle: brute force over the whole event list, written to be obviously correct rather
than fast. Standard library only, and nothing shared with the service (`stream`, `api`,
`callpulse`), so that a bug there cannot hide behind the same bug here. Every definition
follows docs/SEMANTICS.md; where that page leaves a choice open, the choice is commented.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from tests import reference_catalogue as catalogue

Event = Mapping[str, Any]

US_PER_S = 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_MAX_CALL_WAIT_S = 4 * 3600

# Per (queue, call_id) only the first event of these types seen counts (SEMANTICS "Identity").
FIRST_SEEN_TYPES = frozenset(
    {"call.offered", "call.answered", "call.abandoned", "call.exited", "call.resolved"}
)
# Likewise per (queue, ticket_id) (SEMANTICS "Tickets").
FIRST_SEEN_TICKET_TYPES = frozenset({"ticket.opened", "ticket.first_response", "ticket.resolved"})
DEFAULT_REPEAT_WINDOW_S = 72 * 3600
STAFFING_WINDOW_US = 15 * 60 * US_PER_S
AGENT_STATES = ("available", "on_call", "acw", "paused", "logged_out")

KPI_KEYS = (
    "offered", "answered", "abandoned", "short_abandoned", "exited", "answered_in_threshold",
    "service_level", "answer_rate", "abandon_rate", "asa_s", "avg_wait_s", "max_wait_s",
    "avg_abandon_s", "aht_s", "avg_talk_s", "avg_hold_s", "avg_acw_s", "transferred",
    "transfer_rate", "calls_waiting", "longest_wait_s", "agents", "csat", "nps", "ces", "fcr_rate",
)  # fmt: skip
# KPIS.md beyond the contract's list.
CATALOGUE_KEYS = (
    "occupancy", "fcr_provisional", "repeat_rate", "contacts_per_resolution",
    "avg_time_to_resolve_s", "avg_first_response_s", "first_response_by_channel",
    "tickets_opened", "tickets_resolved", "esat", "servqual", "retention_rate", "kb_reads",
    "avg_kb_read_s", "kb_reads_per_call", "required_agents", "predicted_service_level",
    "expected_wait_s", "service_level_status",
)  # fmt: skip

# name -> (numerator, denominator) from the window's counts; KPIS.md "Service-level formulas".
SL_FORMULAS: dict[str, Callable[[Mapping[str, int]], tuple[int, int]]] = {
    "answered_and_abandoned": lambda c: (c["A_T"], c["A"] + c["B"] - c["B_s"]),
    "answered_only": lambda c: (c["A_T"], c["A"]),
    "offered": lambda c: (c["A_T"], c["A"] + c["B"] + c["X"]),
    "ignore_abandons_within_threshold": lambda c: (c["A_T"], c["A"] + c["B"] - c["B_T"]),
    "abandons_within_threshold_count_as_met": lambda c: (
        c["A_T"] + c["B_T"],
        c["A"] + c["B"] + c["X"],
    ),
}


def parse_ts_us(ts: Any) -> int:
    """Event time as integer epoch microseconds.

    Strings are RFC 3339 with an offset (digits below the microsecond are truncated, as
    `datetime.fromisoformat` does). Numbers are epoch seconds, rounded half-even to the
    microsecond through their shortest decimal form, so `1709283600.000001` is exact.
    """
    if isinstance(ts, bool):
        raise TypeError(f"ts must be a string or a number, not {ts!r}")
    if isinstance(ts, int):
        return ts * US_PER_S
    if isinstance(ts, float):
        micros = Decimal(repr(ts)) * US_PER_S
        return int(micros.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    if isinstance(ts, str):
        moment = datetime.fromisoformat(ts)
        if moment.tzinfo is None:
            raise ValueError(f"ts without an offset: {ts!r}")
        delta = moment - EPOCH
        return (delta.days * 86_400 + delta.seconds) * US_PER_S + delta.microseconds
    raise TypeError(f"ts must be a string or a number, not {ts!r}")


def counted_events(events: Iterable[Event]) -> list[tuple[int, Event]]:
    """The events that count, as `(ts_us, event)` in input order.

    First by `event_id` (the first occurrence wins, whatever the content of later ones), then
    the first offered/answered/abandoned/exited/resolved per `(queue, call_id)`.
    """
    seen_ids: set[str] = set()
    seen_calls: set[tuple[str, str, str]] = set()
    kept: list[tuple[int, Event]] = []
    for event in events:
        if event["event_id"] in seen_ids:
            continue
        seen_ids.add(event["event_id"])
        if event["type"] in FIRST_SEEN_TYPES | FIRST_SEEN_TICKET_TYPES:
            item = event["call_id"] if event["type"] in FIRST_SEEN_TYPES else event["ticket_id"]
            call = (event["type"], event["queue"], item)
            if call in seen_calls:
                continue
            seen_calls.add(call)
        kept.append((parse_ts_us(event["ts"]), event))
    return kept


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


def _mean(values: list[float]) -> float | None:
    # fsum is exactly rounded, so the result does not depend on the order of the events.
    return None if not values else math.fsum(values) / len(values)


def _of_type(
    counted: list[tuple[int, Event]], event_type: str, start_us: int, end_us: int
) -> list[tuple[int, Event]]:
    return [(t, e) for t, e in counted if e["type"] == event_type and start_us <= t < end_us]


def _offered_us(counted: list[tuple[int, Event]]) -> dict[tuple[str, str], int]:
    """Offered ts of every call in the whole stream (not only the window): waits need it."""
    return {(e["queue"], e["call_id"]): t for t, e in counted if e["type"] == "call.offered"}


def _wait_s(ts_us: int, event: Event, offered_us: Mapping[tuple[str, str], int]) -> float | None:
    if event.get("wait_s") is not None:
        return float(event["wait_s"])
    offered = offered_us.get((event["queue"], event["call_id"]))
    return None if offered is None else (ts_us - offered) / US_PER_S


def _traffic(
    counted: list[tuple[int, Event]],
    start_us: int,
    end_us: int,
    threshold_s: int,
    short_abandon_s: float,
    sl_formula: str,
) -> dict[str, Any]:
    offered_us = _offered_us(counted)
    answered = _of_type(counted, "call.answered", start_us, end_us)
    abandoned = _of_type(counted, "call.abandoned", start_us, end_us)
    answered_waits = [w for t, e in answered if (w := _wait_s(t, e, offered_us)) is not None]
    abandoned_waits = [w for t, e in abandoned if (w := _wait_s(t, e, offered_us)) is not None]
    counts = {
        "O": len(_of_type(counted, "call.offered", start_us, end_us)),
        "A": len(answered),
        "B": len(abandoned),
        "X": len(_of_type(counted, "call.exited", start_us, end_us)),
        "A_T": sum(1 for w in answered_waits if w <= threshold_s),
        "B_T": sum(1 for w in abandoned_waits if w <= threshold_s),
        "B_s": sum(1 for w in abandoned_waits if w < short_abandon_s),
    }
    sl_numerator, sl_denominator = SL_FORMULAS[sl_formula](counts)
    handled = counts["A"] + counts["B"] + counts["X"]
    all_waits = answered_waits + abandoned_waits
    return {
        "offered": counts["O"],
        "answered": counts["A"],
        "abandoned": counts["B"],
        "short_abandoned": counts["B_s"],
        "exited": counts["X"],
        "answered_in_threshold": counts["A_T"],
        "service_level": _ratio(sl_numerator, sl_denominator),
        "answer_rate": _ratio(counts["A"], handled),
        "abandon_rate": _ratio(counts["B"], handled),
        "asa_s": _mean(answered_waits),
        "avg_wait_s": _mean(all_waits),
        "max_wait_s": max(all_waits, default=None),
        "avg_abandon_s": _mean(abandoned_waits),
        # Erlang A's patience rate: abandons / seconds waited (SEMANTICS "Staffing").
        "_theta": (
            len(abandoned_waits) / math.fsum(all_waits)
            if abandoned_waits and math.fsum(all_waits) > 0
            else None
        ),
    }


def _handle_time(counted: list[tuple[int, Event]], start_us: int, end_us: int) -> dict[str, Any]:
    ended = [e for _, e in _of_type(counted, "call.ended", start_us, end_us)]
    wrapups = [e for _, e in _of_type(counted, "call.wrapup_ended", start_us, end_us)]
    avg_talk_s = _mean([float(e["talk_s"]) for e in ended])
    avg_hold_s = _mean([float(e.get("hold_s") or 0) for e in ended])
    avg_acw_s = _mean([float(e["acw_s"]) for e in wrapups])
    aht_s = None
    if avg_talk_s is not None and avg_hold_s is not None:
        aht_s = avg_talk_s + avg_hold_s + (avg_acw_s or 0.0)
    return {
        "aht_s": aht_s,
        "avg_talk_s": avg_talk_s,
        "avg_hold_s": avg_hold_s,
        "avg_acw_s": avg_acw_s,
        "transferred": len(_of_type(counted, "call.transferred", start_us, end_us)),
    }


def _surveys(
    counted: list[tuple[int, Event]], kind: str, start_us: int, end_us: int
) -> list[Event]:
    responses = _of_type(counted, "survey.response", start_us, end_us)
    return [e for _, e in responses if e.get("survey") == kind]


def _csat(counted: list[tuple[int, Event]], start_us: int, end_us: int) -> float | None:
    responses = _surveys(counted, "csat", start_us, end_us)
    satisfied = [e for e in responses if e["score"] >= (e.get("scale_max") or 5) - 1]
    return _ratio(len(satisfied), len(responses))


def _satisfaction(counted: list[tuple[int, Event]], start_us: int, end_us: int) -> dict[str, Any]:
    nps = _surveys(counted, "nps", start_us, end_us)
    promoters = sum(1 for e in nps if e["score"] >= 9)
    detractors = sum(1 for e in nps if e["score"] <= 6)
    resolutions = [e for _, e in _of_type(counted, "call.resolved", start_us, end_us)]
    first_contact = [
        e for e in resolutions if e["resolved"] is True and e.get("first_contact") is not False
    ]
    return {
        "csat": _csat(counted, start_us, end_us),
        "nps": _ratio(100 * (promoters - detractors), len(nps)),
        "ces": _mean([float(e["score"]) for e in _surveys(counted, "ces", start_us, end_us)]),
        "fcr_rate": _ratio(len(first_contact), len(resolutions)),
    }


def _waiting(
    counted: list[tuple[int, Event]], end_us: int, max_call_wait_s: float, now_us: int
) -> dict[str, Any]:
    """Calls offered before `end` with no answer/abandon/exit before `end`, at most 4 h old."""
    ended_before: set[tuple[str, str]] = {
        (e["queue"], e["call_id"])
        for t, e in counted
        if e["type"] in ("call.answered", "call.abandoned", "call.exited") and t < end_us
    }
    waiting_since = [
        offered
        for call, offered in _offered_us(counted).items()
        if offered < end_us
        and call not in ended_before
        # "Waiting longer than max_call_wait_s is dropped": exactly max_call_wait_s still waits.
        and end_us - offered <= max_call_wait_s * US_PER_S
    ]
    # A live window ends after now: its longest wait is the oldest call's age now (not below 0).
    age_at_us = min(end_us, now_us)
    longest = None if not waiting_since else max(age_at_us - min(waiting_since), 0) / US_PER_S
    return {"calls_waiting": len(waiting_since), "longest_wait_s": longest}


def _latest_states(counted: list[tuple[int, Event]], end_us: int) -> dict[str, Event]:
    """agent_id -> its latest agent.state event with ts < end (ties: the larger event_id)."""
    latest: dict[str, tuple[int, str, Event]] = {}
    for t, e in counted:
        if e["type"] != "agent.state" or t >= end_us:
            continue
        key = (t, e["event_id"], e)
        if e["agent_id"] not in latest or key[:2] > latest[e["agent_id"]][:2]:
            latest[e["agent_id"]] = key
    return {agent: state for agent, (_, _, state) in latest.items()}


def _agents(counted: list[tuple[int, Event]], queue: str | None, end_us: int) -> dict[str, int]:
    tally = dict.fromkeys((*AGENT_STATES, "logged_in"), 0)
    for state_event in _latest_states(counted, end_us).values():
        if queue is not None and queue not in (state_event.get("queues") or []):
            continue
        state = state_event["state"]
        tally[state] = tally.get(state, 0) + 1
        if state != "logged_out":
            tally["logged_in"] += 1
    return tally


def reference_kpis(
    events: Iterable[Event],
    *,
    queue: str | None,
    start_us: int,
    end_us: int,
    threshold_s: int = 20,
    short_abandon_s: float = 5.0,
    sl_formula: str = "answered_and_abandoned",
    max_call_wait_s: float = DEFAULT_MAX_CALL_WAIT_S,
    now_us: int | None = None,
    repeat_window_s: float | Mapping[str, float] = DEFAULT_REPEAT_WINDOW_S,
    customer_base: int = 0,
    target: float = 0.8,
    erlang_target: float | None = None,
) -> dict[str, Any]:
    """The KPI object of `queue` (None: the whole centre) over the window `[start_us, end_us)`.

    `now_us` (default: `end_us`) is when the question is asked: a live window's occupancy and
    arrival rate stop there, and FCR by the repeat rule is provisional until then.
    """
    if sl_formula not in SL_FORMULAS:
        raise ValueError(f"unknown sl_formula {sl_formula!r}")
    now_us = end_us if now_us is None else now_us
    everything = counted_events(events)
    # The agents figure filters by the `queues` list of agent.state events, not by `queue`.
    agents = _agents(everything, queue, end_us)
    counted = everything
    if queue is not None:
        counted = [(t, e) for t, e in counted if e.get("queue") == queue]
    figures: dict[str, Any] = {
        **_traffic(counted, start_us, end_us, threshold_s, short_abandon_s, sl_formula),
        **_handle_time(counted, start_us, end_us),
        **_waiting(counted, end_us, max_call_wait_s, now_us),
        **_satisfaction(counted, start_us, end_us),
        "agents": agents,
    }
    figures["transfer_rate"] = _ratio(figures["transferred"], figures["answered"])
    windows = {
        e["queue"]: (
            repeat_window_s.get(e["queue"], DEFAULT_REPEAT_WINDOW_S)
            if isinstance(repeat_window_s, Mapping)
            else repeat_window_s
        )
        for _, e in everything
        if "queue" in e
    }
    counts = catalogue.resolution_counts(everything, counted, start_us, end_us, windows, now_us)
    figures |= catalogue.resolution(counts, catalogue.ticket_contacts(counted, start_us, end_us))
    figures |= catalogue.tickets(counted, start_us, end_us)
    figures |= catalogue.self_service(counted, figures["offered"], start_us, end_us)
    figures |= catalogue.surveys(counted, start_us, end_us)
    figures["retention_rate"] = catalogue.retention(everything, customer_base, start_us, end_us)
    stop_us = min(end_us, now_us)
    busy, staffed = catalogue.occupancy_parts(everything, queue, None, start_us, stop_us)
    figures["occupancy"] = _ratio(busy, staffed)
    arrivals_from = end_us - STAFFING_WINDOW_US
    figures |= catalogue.staffing(
        offered_15m=len(_of_type(counted, "call.offered", arrivals_from, end_us)),
        elapsed_s=(stop_us - arrivals_from) / US_PER_S,
        aht_s=figures["aht_s"],
        agents=agents["logged_in"] - agents["paused"],
        threshold_s=threshold_s,
        target=target if erlang_target is None else erlang_target,
        theta=figures["_theta"],
    )
    figures["service_level_status"] = catalogue.status(figures["service_level"], target)
    return {key: figures[key] for key in (*KPI_KEYS, *CATALOGUE_KEYS)}


def reference_agent_kpis(
    events: Iterable[Event],
    *,
    agent_id: str,
    start_us: int,
    end_us: int,
    now_us: int | None = None,
) -> dict[str, Any]:
    """Per-agent figures over `[start_us, end_us)` from the events carrying `agent_id`."""
    counted = counted_events(events)
    state_event = _latest_states(counted, end_us).get(agent_id)
    mine = [(t, e) for t, e in counted if e.get("agent_id") == agent_id]
    stop_us = end_us if now_us is None else min(end_us, now_us)
    busy, staffed = catalogue.occupancy_parts(counted, None, agent_id, start_us, stop_us)
    return {
        "answered": len(_of_type(mine, "call.answered", start_us, end_us)),
        **_handle_time(mine, start_us, end_us),
        "csat": _csat(mine, start_us, end_us),
        "esat": catalogue.surveys(mine, start_us, end_us)["esat"],
        "occupancy": _ratio(busy, staffed),
        "state": None if state_event is None else state_event["state"],
    }
