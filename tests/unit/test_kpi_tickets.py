"""The ticket state machine: each figure once per ticket, whatever the order of its events."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from stream.kpi.accumulator import KpiAccumulator
from stream.kpi.tickets import apply_ticket_event, new_ticket_state, ticket_channel
from stream.kpi.timeutil import US_PER_S, bucket_start_us

T0 = 1_709_287_200 * US_PER_S


class Sink:
    def __init__(self) -> None:
        self.buckets: dict[int, KpiAccumulator] = {}

    def queue_bucket(self, ts_us: int) -> KpiAccumulator:
        return self.buckets.setdefault(bucket_start_us(ts_us), KpiAccumulator())

    def total(self) -> KpiAccumulator:
        acc = KpiAccumulator()
        for part in self.buckets.values():
            acc.merge(part)
        return acc


def ev(kind: str, event_id: str, at_s: float, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": f"ticket.{kind}", "ts_us": T0 + round(at_s * US_PER_S),
            "queue": "q", "ticket_id": "T1", **fields}  # fmt: skip


def run(events: list[dict[str, Any]]) -> tuple[dict[str, Any], Sink]:
    state, sink = new_ticket_state("T1"), Sink()
    for event in events:
        apply_ticket_event(state, event, sink)
    return state, sink


LIFE = [
    ev("opened", "o", 0, channel="email"),
    ev("first_response", "f", 90, channel="chat"),
    ev("resolved", "r", 600, contacts=3),
]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_every_order_gives_the_same_figures(order: tuple[int, ...]) -> None:
    _, sink = run([LIFE[i] for i in order])
    total = sink.total()
    assert (total.tickets_opened, total.tickets_resolved) == (1, 1)
    assert total.first_response == {"email": [1.0, 90.0]}  # the opening's channel
    assert (total.tickets_resolve_timed, total.ticket_resolve_s_sum) == (1, 600.0)
    assert (total.ticket_contacts_n, total.ticket_contacts_sum) == (1, 3.0)
    # Durations land in the minute of their own defining event.
    assert sink.buckets[T0 + 60 * US_PER_S].first_response == {"email": [1.0, 90.0]}
    assert sink.buckets[T0 + 600 * US_PER_S].ticket_resolve_s_sum == 600.0


@pytest.mark.parametrize(
    ("events", "opened", "resolved", "responses", "timed"),
    [
        (LIFE + LIFE, 1, 1, {"email": [1.0, 90.0]}, 1),  # duplicates by id: once
        ([*LIFE, ev("resolved", "r2", 700)], 1, 1, {"email": [1.0, 90.0]}, 1),  # a resend
        (LIFE[1:], 0, 1, {}, 0),  # never opened: no durations, resolved still counts
        ([LIFE[0], ev("first_response", "f", -30)], 1, 0, {"email": [1.0, 0.0]}, 0),  # skew: 0
    ],
    ids=["duplicates", "resend", "no-opening", "clock-skew"],
)
def test_edge_cases(
    events: list[dict[str, Any]],
    opened: int,
    resolved: int,
    responses: dict[str, list[float]],
    timed: int,
) -> None:
    total = run(events)[1].total()
    assert (total.tickets_opened, total.tickets_resolved) == (opened, resolved)
    assert (total.first_response, total.tickets_resolve_timed) == (responses, timed)


@pytest.mark.parametrize(
    ("opened", "responded", "channel"),
    [
        ({"channel": "email"}, {"channel": "chat"}, "email"),  # the opening's wins
        ({}, {"channel": "chat"}, "chat"),  # else the response's
        ({}, {}, "unknown"),  # else unknown
    ],
)
def test_channel(opened: dict[str, str], responded: dict[str, str], channel: str) -> None:
    state, sink = run([ev("opened", "o", 0, **opened), ev("first_response", "f", 5, **responded)])
    assert ticket_channel(state) == channel
    assert list(sink.total().first_response) == [channel]


def test_a_duplicate_reports_false() -> None:
    state, sink = run(LIFE)
    assert apply_ticket_event(state, LIFE[0], sink) is False
