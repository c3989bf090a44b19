"""Independent reference for the KPIS.md figures beyond the contract's (see tests/reference.py).

Brute force over counted events `(ts_us, event)`, standard library only, nothing shared with
callpulse. Definitions: docs/SEMANTICS.md "Resolution", "Tickets", "Surveys", "Self-service",
"Retention", "Occupancy", "Staffing", "Targets"; written from that page, not from the code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

Event = Mapping[str, Any]
Counted = list[tuple[int, Event]]

US_PER_S = 1_000_000
DIMENSIONS = ("tangibles", "reliability", "responsiveness", "assurance", "empathy")
BUSY = ("on_call", "acw")
STAFFED = ("available", "on_call", "acw")


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


def _mean(values: list[float]) -> float | None:
    return None if not values else math.fsum(values) / len(values)


def _in(counted: Counted, kind: str, start_us: int, end_us: int) -> list[tuple[int, Event]]:
    return [(t, e) for t, e in counted if e["type"] == kind and start_us <= t < end_us]


# -- resolution ----------------------------------------------------------------------------------


def _contacts(everything: Counted) -> tuple[dict[tuple[str, str], str], dict[str, dict[str, int]]]:
    """(queue, call_id) -> caller; caller -> call_id -> earliest offer in any queue."""
    caller_of: dict[tuple[str, str], str] = {}
    times: dict[str, dict[str, int]] = {}
    for t, e in everything:
        if e["type"] != "call.offered" or not isinstance(e.get("caller"), str):
            continue
        caller_of[(e["queue"], e["call_id"])] = e["caller"]
        mine = times.setdefault(e["caller"], {})
        mine[e["call_id"]] = min(t, mine.get(e["call_id"], t))
    return caller_of, times


def resolution_counts(
    everything: Counted,
    mine: Counted,
    start_us: int,
    end_us: int,
    repeat_window_s: Mapping[str, float],
    now_us: int,
) -> dict[str, int]:
    """Counts over `mine` (the queue's events, or all) with callers looked up in `everything`."""
    caller_of, times = _contacts(everything)
    counts = dict.fromkeys(("res", "fcr", "prov", "ans", "rep", "cn", "cs"), 0)
    for _, e in _in(mine, "call.resolved", start_us, end_us):
        window_us = round(repeat_window_s[e["queue"]] * US_PER_S)
        counts["res"] += 1
        caller = caller_of.get((e["queue"], e["call_id"]))
        own = others = None
        if caller is not None:
            own = times[caller][e["call_id"]]
            others = [t for call, t in times[caller].items() if call != e["call_id"]]
        if caller is not None and e["resolved"] is True:
            counts["cn"] += 1
            counts["cs"] += 1 + len([t for t in others or [] if own - window_us <= t < own])
        flag = e.get("first_contact")
        if isinstance(flag, bool):
            counts["fcr"] += int(e["resolved"] is True and flag)
        elif caller is None:
            counts["fcr"] += int(e["resolved"] is True)
        elif e["resolved"] is True and not [t for t in others or [] if abs(t - own) <= window_us]:
            counts["fcr"] += 1
            counts["prov"] += int(now_us <= own + window_us)
    for _, e in _in(mine, "call.answered", start_us, end_us):
        window_us = round(repeat_window_s[e["queue"]] * US_PER_S)
        counts["ans"] += 1
        caller = caller_of.get((e["queue"], e["call_id"]))
        if caller is None:
            continue
        own = times[caller][e["call_id"]]
        if [
            t for c, t in times[caller].items() if c != e["call_id"] and own - window_us <= t < own
        ]:
            counts["rep"] += 1
    return counts


def resolution(counts: Mapping[str, int], ticket_contacts: list[float]) -> dict[str, Any]:
    per_resolution = (
        _mean(ticket_contacts) if ticket_contacts else _ratio(counts["cs"], counts["cn"])
    )
    return {
        "fcr_rate": _ratio(counts["fcr"], counts["res"]),
        "fcr_provisional": counts["prov"] > 0,
        "repeat_rate": _ratio(counts["rep"], counts["ans"]),
        "contacts_per_resolution": per_resolution,
    }


# -- tickets, self-service, surveys --------------------------------------------------------------


def tickets(counted: Counted, start_us: int, end_us: int) -> dict[str, Any]:
    opened = {
        (e["queue"], e["ticket_id"]): (t, e) for t, e in counted if e["type"] == "ticket.opened"
    }
    resolve_s: list[float] = []
    responses: dict[str, list[float]] = {}
    for t, e in _in(counted, "ticket.resolved", start_us, end_us):
        if (e["queue"], e["ticket_id"]) in opened:
            resolve_s.append(max(t - opened[(e["queue"], e["ticket_id"])][0], 0) / US_PER_S)
    for t, e in _in(counted, "ticket.first_response", start_us, end_us):
        found = opened.get((e["queue"], e["ticket_id"]))
        if found is None:
            continue
        channel = found[1].get("channel") or e.get("channel") or "unknown"
        responses.setdefault(channel, []).append(max(t - found[0], 0) / US_PER_S)
    return {
        "tickets_opened": len(_in(counted, "ticket.opened", start_us, end_us)),
        "tickets_resolved": len(_in(counted, "ticket.resolved", start_us, end_us)),
        "avg_time_to_resolve_s": _mean(resolve_s),
        "avg_first_response_s": _mean([s for values in responses.values() for s in values]),
        "first_response_by_channel": {c: _mean(v) for c, v in sorted(responses.items())},
    }


def ticket_contacts(counted: Counted, start_us: int, end_us: int) -> list[float]:
    return [
        float(e["contacts"])
        for _, e in _in(counted, "ticket.resolved", start_us, end_us)
        if isinstance(e.get("contacts"), int)
    ]


def self_service(counted: Counted, offered: int, start_us: int, end_us: int) -> dict[str, Any]:
    reads = [e for _, e in _in(counted, "kb.article_viewed", start_us, end_us)]
    return {
        "kb_reads": len(reads),
        "avg_kb_read_s": _mean([float(e["read_s"]) for e in reads if e.get("read_s") is not None]),
        "kb_reads_per_call": _ratio(len(reads), offered),
    }


def surveys(counted: Counted, start_us: int, end_us: int) -> dict[str, Any]:
    answers = [e for _, e in _in(counted, "survey.response", start_us, end_us)]
    servqual: dict[str, float | None] = {}
    for dimension in DIMENSIONS:
        mine = [e for e in answers if e["survey"] == "servqual" and e["dimension"] == dimension]
        perception = _mean([float(e["perception"]) for e in mine])
        expectation = _mean([float(e["expectation"]) for e in mine])
        gap = None if perception is None or expectation is None else perception - expectation
        servqual[dimension] = gap
    return {
        "esat": _mean([float(e["score"]) for e in answers if e["survey"] == "esat"]),
        "servqual": servqual,
    }


def retention(everything: Counted, base: int, start_us: int, end_us: int) -> float | None:
    def count(kind: str, low: int | None, high: int) -> int:
        return len(
            [
                t
                for t, e in everything
                if e["type"] == kind and (low is None or t >= low) and t < high
            ]
        )

    at_start = (
        base
        + count("customer.acquired", None, start_us)
        - count("customer.churned", None, start_us)
    )
    if at_start <= 0:
        return None
    acquired = count("customer.acquired", start_us, end_us)
    at_end = at_start + acquired - count("customer.churned", start_us, end_us)
    return 100.0 * (at_end - acquired) / at_start


# -- occupancy -----------------------------------------------------------------------------------


def occupancy_parts(
    everything: Counted, queue: str | None, agent: str | None, start_us: int, stop_us: int
) -> tuple[int, int]:
    """(busy, staffed) µs: each agent.state holds from its ts to the agent's next one."""
    by_agent: dict[str, list[tuple[int, str, Event]]] = {}
    for t, e in everything:
        if e["type"] == "agent.state" and (agent is None or e["agent_id"] == agent):
            by_agent.setdefault(e["agent_id"], []).append((t, e["event_id"], e))
    busy = staffed = 0
    for changes in by_agent.values():
        changes.sort(key=lambda change: change[:2])
        for index, (since, _, e) in enumerate(changes):
            until = changes[index + 1][0] if index + 1 < len(changes) else stop_us
            overlap = min(until, stop_us) - max(since, start_us)
            if overlap <= 0 or (queue is not None and queue not in (e.get("queues") or [])):
                continue
            busy += overlap if e["state"] in BUSY else 0
            staffed += overlap if e["state"] in STAFFED else 0
    return busy, staffed


# -- staffing (textbook Erlang C; Erlang A by direct summation) ----------------------------------


def _erlang_c(agents: int, traffic: float) -> float:
    """C(N, A) = (A^N/N! * N/(N-A)) / (sum_{k<N} A^k/k! + A^N/N! * N/(N-A)), in log space."""
    logs = [k * math.log(traffic) - math.lgamma(k + 1) for k in range(agents + 1)]
    terms = [math.exp(v - max(logs)) for v in logs]  # scaled: the ratio is unchanged
    top = terms[agents] * agents / (agents - traffic)
    return top / (math.fsum(terms[:agents]) + top)


def _sl(agents: int, traffic: float, threshold_s: float, aht_s: float) -> float:
    if agents <= traffic:
        return 0.0
    return 1.0 - _erlang_c(agents, traffic) * math.exp(-(agents - traffic) * threshold_s / aht_s)


def _erlang_a_wait(agents: int, rate: float, aht_s: float, theta: float) -> float:
    if rate == 0:
        return 0.0 if agents > 0 else 1.0 / theta
    logs = [0.0]
    for n in range(1, agents + 20000):
        logs.append(
            logs[-1] + math.log(rate / (min(n, agents) / aht_s + max(n - agents, 0) * theta))
        )
    peak = max(logs)
    weights = [math.exp(v - peak) for v in logs]
    queued = math.fsum(max(n - agents, 0) * w for n, w in enumerate(weights))
    return queued / math.fsum(weights) / rate


def staffing(
    offered_15m: int,
    elapsed_s: float,
    aht_s: float | None,
    agents: int,
    threshold_s: float,
    target: float,
    theta: float | None,
) -> dict[str, Any]:
    if aht_s is None:
        return {"required_agents": None, "predicted_service_level": None, "expected_wait_s": None}
    rate = offered_15m / elapsed_s
    traffic = rate * aht_s
    if traffic == 0:
        required, predicted = 0, (1.0 if agents > 0 else None)
    else:
        required = next(
            n for n in range(1, 100_000) if _sl(n, traffic, threshold_s, aht_s) >= target
        )
        predicted = _sl(agents, traffic, threshold_s, aht_s)
    if theta is not None:
        wait: float | None = _erlang_a_wait(agents, rate, aht_s, theta)
    elif traffic == 0:
        wait = 0.0 if agents > 0 else None
    elif agents <= traffic:
        wait = None
    else:
        wait = _erlang_c(agents, traffic) * aht_s / (agents - traffic)
    return {
        "required_agents": required,
        "predicted_service_level": predicted,
        "expected_wait_s": wait,
    }


def status(value: float | None, target: float, margin: float = 0.05) -> str | None:
    """A floor target: missed below it, at risk within `margin` x target above it, else met."""
    if value is None:
        return None
    if value < target:
        return "missed"
    return "at_risk" if value < target * (1 + margin) else "met"
