"""The reference calculation against figures worked out by hand from docs/SEMANTICS.md.

Every row is a tiny event list whose expected figures are written out from the formulas.
Time axis of the default window (queue "sales", one hour):

    T0 = 2024-03-01T09:00:00Z                                   T0 + 3600 s
    |[start ............................................... end)|
"""

from __future__ import annotations

import ast
import itertools
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.reference import (
    CATALOGUE_KEYS,
    KPI_KEYS,
    SL_FORMULAS,
    parse_ts_us,
    reference_agent_kpis,
    reference_kpis,
)
from tests.streamgen import duplicate_and_reorder, generate_history

T0 = datetime(2024, 3, 1, 9, tzinfo=UTC)
T0_US = 1_709_283_600_000_000  # T0 in epoch microseconds
S = 1_000_000
END_US = T0_US + 3600 * S
NO_AGENTS = {"available": 0, "on_call": 0, "acw": 0, "paused": 0, "logged_out": 0, "logged_in": 0}

Event = dict[str, Any]


def at(seconds: float) -> str:
    """RFC 3339 "Z" timestamp of T0 + seconds, exact to the microsecond."""
    moment = T0 + timedelta(microseconds=round(seconds * S))
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def call(
    kind: str, event_id: str, t_s: float, call_id: str = "c1", queue: str = "sales", **fields: Any
) -> Event:
    return {
        "event_id": event_id,
        "type": f"call.{kind}",
        "ts": at(t_s),
        "queue": queue,
        "call_id": call_id,
        **fields,
    }


def survey(event_id: str, kind: str, score: int, **fields: Any) -> Event:
    return {
        "event_id": event_id,
        "type": "survey.response",
        "ts": at(60),
        "queue": "sales",
        "call_id": event_id,
        "survey": kind,
        "score": score,
        **fields,
    }


def state(event_id: str, agent: str, t_s: float, value: str, queues: Sequence[str]) -> Event:
    return {
        "event_id": event_id,
        "type": "agent.state",
        "ts": at(t_s),
        "agent_id": agent,
        "state": value,
        "queues": list(queues),
    }


def kpis(events: list[Event], **options: Any) -> dict[str, Any]:
    window: dict[str, Any] = {"queue": "sales", "start_us": T0_US, "end_us": END_US} | options
    return reference_kpis(events, **window)


# ---------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("ts", "expected_us"),
    [
        ("2024-03-01T09:00:00Z", T0_US),  # "Z"
        ("2024-03-01T09:00:00+00:00", T0_US),  # explicit UTC offset
        ("2024-03-01T11:00:00.000001+02:00", T0_US + 1),  # same instant east of UTC, + 1 µs
        ("2024-03-01T03:30:00-05:30", T0_US),  # half-hour offset west of UTC
        ("2024-03-01T09:00:00.0000019Z", T0_US + 1),  # below the µs: truncated, as fromisoformat
        (1709283600, T0_US),  # epoch seconds, int
        (1709283600.000001, T0_US + 1),  # epoch seconds, float, exact to the µs
        (1709283612.5, T0_US + 12_500_000),  # a float with a half second
    ],
)
def test_parse_ts_us(ts: str | float, expected_us: int) -> None:
    assert parse_ts_us(ts) == expected_us


@pytest.mark.parametrize("ts", ["2024-03-01T09:00:00", True, None])
def test_parse_ts_us_rejects_naive_and_non_times(ts: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        parse_ts_us(ts)


# ---------------------------------------------------------------- queue traffic

TRAFFIC_CASES = [
    # Threshold boundary: a wait of exactly T = 20.0 s is within the threshold.
    pytest.param(
        [call("offered", "o1", 0), call("answered", "a1", 20, wait_s=20.0, agent_id="x")],
        {"answered": 1, "answered_in_threshold": 1, "service_level": 1.0, "asa_s": 20.0},
        id="wait-exactly-20s-is-within",
    ),
    # One microsecond over the threshold is not.
    pytest.param(
        [call("offered", "o1", 0), call("answered", "a1", 20, wait_s=20.000001, agent_id="x")],
        {"answered": 1, "answered_in_threshold": 0, "service_level": 0.0, "asa_s": 20.000001},
        id="wait-20.000001s-is-outside",
    ),
    # No wait_s: the wait is answered ts - offered ts, across "Z" and "+02:00" forms.
    pytest.param(
        [
            call("offered", "o1", 0),
            call("answered", "a1", 0, agent_id="x") | {"ts": "2024-03-01T11:00:20+02:00"},
        ],
        {"answered_in_threshold": 1, "asa_s": 20.0, "max_wait_s": 20.0, "avg_wait_s": 20.0},
        id="derived-wait-exactly-20s",
    ),
    # A derived wait one microsecond over the threshold.
    pytest.param(
        [call("offered", "o1", 10), call("answered", "a1", 30.000001, agent_id="x")],
        {"answered_in_threshold": 0, "service_level": 0.0, "asa_s": 20.000001},
        id="derived-wait-20.000001s",
    ),
    # Epoch-seconds timestamps derive waits like strings do: 12.5 s.
    pytest.param(
        [
            call("offered", "o1", 0) | {"ts": 1709283600},
            call("answered", "a1", 0, agent_id="x") | {"ts": 1709283612.5},
        ],
        {"offered": 1, "answered": 1, "answered_in_threshold": 1, "asa_s": 12.5},
        id="derived-wait-epoch-seconds",
    ),
    # wait_s wins over the timestamps when both are there.
    pytest.param(
        [call("offered", "o1", 0), call("answered", "a1", 50, wait_s=3.0, agent_id="x")],
        {"answered_in_threshold": 1, "asa_s": 3.0},
        id="wait_s-preferred-to-timestamps",
    ),
    # Short abandon boundary: exactly 5.0 s is not short, so it stays in A + B - B_s = 1.
    pytest.param(
        [call("offered", "o1", 0), call("abandoned", "b1", 5, wait_s=5.0)],
        {"abandoned": 1, "short_abandoned": 0, "service_level": 0.0, "avg_abandon_s": 5.0},
        id="abandon-exactly-5s-is-not-short",
    ),
    # 4.999999 s is short; the default SL denominator A + B - B_s = 0 + 1 - 1 is empty.
    pytest.param(
        [call("offered", "o1", 0), call("abandoned", "b1", 4.999999)],
        {"short_abandoned": 1, "service_level": None, "abandon_rate": 1.0, "answer_rate": 0.0},
        id="abandon-4.999999s-is-short",
    ),
    # The offered event may lie before the window: it still gives the abandon's wait (33 s).
    pytest.param(
        [call("offered", "o1", -30), call("abandoned", "b1", 3)],
        {"offered": 0, "abandoned": 1, "avg_abandon_s": 33.0, "max_wait_s": 33.0},
        id="wait-from-offered-before-window",
    ),
    # Unknown wait (no wait_s, no offered): counted in answered, in no wait figure.
    pytest.param(
        [call("answered", "a1", 10, agent_id="x")],
        {
            "answered": 1,
            "answered_in_threshold": 0,
            "service_level": 0.0,
            "asa_s": None,
            "avg_wait_s": None,
            "max_wait_s": None,
        },
        id="unknown-wait",
    ),
    # Same event_id delivered three times (even with other content): counts once.
    pytest.param(
        [call("offered", "o1", 0), call("offered", "o1", 0), call("offered", "o1", 99, "c2")],
        {"offered": 1},
        id="duplicate-event-id-counts-once",
    ),
    # A PBX resend (second answered, new id) is ignored: the first one seen gives the wait.
    pytest.param(
        [
            call("offered", "o1", 0),
            call("answered", "a1", 10, wait_s=10.0, agent_id="x"),
            call("answered", "a2", 30, wait_s=30.0, agent_id="y"),
        ],
        {"answered": 1, "asa_s": 10.0},
        id="second-answered-new-id-ignored",
    ),
    # The window is [start, end): an event at start counts, one at end does not.
    pytest.param(
        [call("offered", "o1", 0), call("offered", "o2", 3600, "c2")],
        {"offered": 1},
        id="start-included-end-excluded",
    ),
    # One microsecond before the end still counts.
    pytest.param(
        [call("offered", "o1", 3599.999999), call("offered", "o2", -0.000001, "c2")],
        {"offered": 1},
        id="last-microsecond-in-first-before-out",
    ),
    # Another queue's calls are not sales'.
    pytest.param(
        [call("offered", "o1", 0, queue="support"), call("abandoned", "b1", 9, queue="support")],
        {"offered": 0, "abandoned": 0, "abandon_rate": None},
        id="other-queue-not-counted",
    ),
    # Exited: in the rate denominators, in no wait figure.
    pytest.param(
        [call("offered", "o1", 0), call("exited", "x1", 90, reason="timeout", wait_s=90.0)],
        {"exited": 1, "answer_rate": 0.0, "abandon_rate": 0.0, "max_wait_s": None},
        id="exited-in-rates-not-waits",
    ),
]


@pytest.mark.parametrize(("events", "expected"), TRAFFIC_CASES)
def test_traffic(events: list[Event], expected: dict[str, Any]) -> None:
    figures = kpis(events)
    assert {key: figures[key] for key in expected} == expected


def test_empty_window_is_all_null_ratios() -> None:
    # Events outside the window only: counts 0, every ratio and mean null, never 0.
    events = [call("offered", "o1", -10), call("answered", "a1", 3600, agent_id="x")]
    figures = kpis(events, end_us=END_US - 60 * S)
    assert (figures["calls_waiting"], figures["longest_wait_s"]) == (1, 3550.0)
    counts = ("offered", "answered", "abandoned", "short_abandoned", "exited")
    assert all(figures[key] == 0 for key in (*counts, "answered_in_threshold", "transferred"))
    nulls = set(KPI_KEYS) - {*counts, "answered_in_threshold", "transferred", "agents"}
    nulls -= {"calls_waiting", "longest_wait_s"}
    assert {key: figures[key] for key in nulls} == dict.fromkeys(nulls)
    assert figures["agents"] == NO_AGENTS
    assert list(figures) == [*KPI_KEYS, *CATALOGUE_KEYS]


# A = 4 answered (waits 10, 20, 5, 30: A_T = 3), B = 3 abandoned (waits 3, 15, 40: B_s = 1,
# B_T = 2), X = 1 exited.
SL_EVENTS = [
    *(
        call("answered", f"a{i}", 100 + i, f"a{i}", wait_s=w, agent_id="x")
        for i, w in enumerate([10.0, 20.0, 5.0, 30.0])
    ),
    *(
        call("abandoned", f"b{i}", 200 + i, f"b{i}", wait_s=w)
        for i, w in enumerate([3.0, 15.0, 40.0])
    ),
    call("exited", "x0", 300, "x0", reason="key", wait_s=60.0),
]


@pytest.mark.parametrize(
    ("sl_formula", "expected"),
    [
        ("answered_and_abandoned", 3 / (4 + 3 - 1)),  # A_T / (A + B - B_s) = 0.5
        ("answered_only", 3 / 4),  # A_T / A
        ("offered", 3 / (4 + 3 + 1)),  # A_T / (A + B + X)
        ("ignore_abandons_within_threshold", 3 / (4 + 3 - 2)),  # A_T / (A + B - B_T)
        ("abandons_within_threshold_count_as_met", (3 + 2) / (4 + 3 + 1)),  # (A_T+B_T)/(A+B+X)
    ],
)
def test_service_level_formulas(sl_formula: str, expected: float) -> None:
    figures = kpis(SL_EVENTS, sl_formula=sl_formula)
    assert figures["service_level"] == pytest.approx(expected, rel=1e-12)
    assert figures["answer_rate"] == 4 / 8
    assert figures["abandon_rate"] == 3 / 8
    assert figures["asa_s"] == 65 / 4
    assert figures["avg_wait_s"] == pytest.approx((65 + 58) / 7, rel=1e-12)
    assert figures["max_wait_s"] == 40.0
    assert figures["avg_abandon_s"] == pytest.approx(58 / 3, rel=1e-12)


@pytest.mark.parametrize(
    ("threshold_s", "short_abandon_s", "expected"),
    [
        (10, 5.0, 2 / 6),  # A_T = 2 (10, 5); denominator unchanged
        (30, 5.0, 4 / 6),  # every answer in threshold
        (20, 3.0, 3 / 7),  # the 3 s abandon is no longer short (strictly less)
    ],
)
def test_thresholds_are_parameters(
    threshold_s: int, short_abandon_s: float, expected: float
) -> None:
    figures = kpis(SL_EVENTS, threshold_s=threshold_s, short_abandon_s=short_abandon_s)
    assert figures["service_level"] == pytest.approx(expected, rel=1e-12)


def test_unknown_formula_is_refused() -> None:
    with pytest.raises(ValueError, match="sl_formula"):
        kpis([], sl_formula="made_up")


def test_total_sums_queues() -> None:
    # sales: 1 answered in threshold; support: 1 answered late and 1 short abandon.
    events = [
        call("answered", "a1", 10, "c1", wait_s=8.0, agent_id="x"),
        call("answered", "a2", 10, "c2", "support", wait_s=25.0, agent_id="y"),
        call("abandoned", "b3", 10, "c3", "support", wait_s=2.0),
        call("offered", "o1", 1, "c1"),
        call("offered", "o1s", 1, "c1", "support"),  # same call_id, another queue: another call
    ]
    total = kpis(events, queue=None)
    assert (total["offered"], total["answered"], total["abandoned"]) == (2, 2, 1)
    assert total["service_level"] == 1 / (2 + 1 - 1)
    assert total["asa_s"] == 16.5
    assert kpis(events, queue="support")["service_level"] == 0.0


# ---------------------------------------------------------------- calls waiting at the end

WAITING_CASES = [
    # Offered before end, answered after end: waiting, since T0 + 3500 s.
    pytest.param(
        [call("offered", "o1", 3500), call("answered", "a1", 3610, agent_id="x")],
        1,
        100.0,
        id="answered-after-end-is-waiting",
    ),
    # Answered exactly at end: still waiting (its end must be < end).
    pytest.param(
        [call("offered", "o1", 3500), call("answered", "a1", 3600, agent_id="x")],
        1,
        100.0,
        id="answered-at-end-is-waiting",
    ),
    # Abandoned or exited before end: not waiting.
    pytest.param(
        [
            call("offered", "o1", 3500),
            call("abandoned", "b1", 3599.999999),
            call("offered", "o2", 3500, "c2"),
            call("exited", "x2", 3550, "c2", wait_s=50.0),
        ],
        0,
        None,
        id="ended-before-end-not-waiting",
    ),
    # Offered exactly at end: not yet waiting; offered before the window start: waiting.
    pytest.param(
        [call("offered", "o1", 3600), call("offered", "o2", -60, "c2")],
        1,
        3660.0,
        id="offered-at-end-not-and-before-start-yes",
    ),
    # Longest wait is the oldest of the waiting calls, to the microsecond.
    pytest.param(
        [
            call("offered", "o1", 3000.5),
            call("offered", "o2", 2999.999999, "c2"),
            call("answered", "a2", 3001, "c2", agent_id="x"),
            call("offered", "o3", 3590, "c3"),
        ],
        2,
        599.5,
        id="longest-is-oldest-still-waiting",
    ),
    # An outcome with no offered: never waiting.
    pytest.param([call("answered", "a1", 10, agent_id="x")], 0, None, id="no-offered-never-waits"),
    # Waiting exactly max_call_wait_s (4 h) still counts; one microsecond more is dropped.
    pytest.param(
        [call("offered", "o1", 3600 - 4 * 3600), call("offered", "o2", -10800.000001, "c2")],
        1,
        14400.0,
        id="four-hours-kept-longer-dropped",
    ),
]


@pytest.mark.parametrize(("events", "waiting", "longest_s"), WAITING_CASES)
def test_calls_waiting_at_end(events: list[Event], waiting: int, longest_s: float | None) -> None:
    figures = kpis(events)
    assert (figures["calls_waiting"], figures["longest_wait_s"]) == (waiting, longest_s)


# ---------------------------------------------------------------- agents at the end

AGENT_EVENTS = [
    state("s1", "ann", 10, "available", ["sales"]),
    state("s2", "bob", 10, "available", ["sales", "support"]),
    state("s3", "bob", 20, "on_call", ["sales", "support"]),  # bob's latest: on call
    state("s4", "cat", 30, "paused", ["support"]),
    state("s5", "dan", 30, "logged_out", ["sales"]),
    state("s6", "eve", 40, "acw", ["sales"]),
    state("s7", "eve", 3600, "available", ["sales"]),  # at end: too late, eve stays in acw
    state("s8", "fay", 50, "available", ["sales"]),
    state("s9", "fay", 50, "paused", ["sales"]),  # same ts: the larger event_id wins
    state("s10", "gus", 60, "available", ["sales"]),
    state("s11", "gus", 70, "logged_out", []),  # logged out with no queues: in no queue
]


@pytest.mark.parametrize(
    ("queue", "expected"),
    [
        # sales: ann available, bob on call, dan logged out, eve acw, fay paused.
        (
            "sales",
            {"available": 1, "on_call": 1, "acw": 1, "paused": 1, "logged_out": 1, "logged_in": 4},
        ),
        # support: bob on call, cat paused.
        ("support", NO_AGENTS | {"on_call": 1, "paused": 1, "logged_in": 2}),
        # total: every agent once, whatever its queues (gus included).
        (
            None,
            {"available": 1, "on_call": 1, "acw": 1, "paused": 2, "logged_out": 2, "logged_in": 5},
        ),
        # a queue nobody serves: all zero.
        ("billing", NO_AGENTS),
    ],
)
def test_agents_by_state(queue: str | None, expected: dict[str, int]) -> None:
    assert kpis(AGENT_EVENTS, queue=queue)["agents"] == expected


# ---------------------------------------------------------------- handle time

ENDED = [
    call("ended", "e1", 100, "c1", agent_id="x", talk_s=100.0, hold_s=20.0),
    call("ended", "e2", 200, "c2", agent_id="y", talk_s=200.0),  # hold_s defaults to 0
]
WRAPUP = call("wrapup_ended", "w1", 150, "c1", agent_id="x", acw_s=30.0)


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        # (100 + 20 + 200 + 0) / 2 + 30 / 1 = 190.
        pytest.param(
            [*ENDED, WRAPUP],
            {"aht_s": 190.0, "avg_talk_s": 150.0, "avg_hold_s": 10.0, "avg_acw_s": 30.0},
            id="with-wrapups",
        ),
        # No wrap-up in the window: the ACW part is 0.
        pytest.param(ENDED, {"aht_s": 160.0, "avg_acw_s": None}, id="without-wrapups"),
        # No ended call: AHT null even with a wrap-up.
        pytest.param(
            [WRAPUP], {"aht_s": None, "avg_talk_s": None, "avg_acw_s": 30.0}, id="wrapup-only"
        ),
        # Two ended events of one call (a transfer within the queue) both count.
        pytest.param(
            [*ENDED, call("ended", "e3", 300, "c2", agent_id="z", talk_s=60.0, hold_s=0)],
            {"avg_talk_s": 120.0, "avg_hold_s": 20 / 3},
            id="two-ended-one-call",
        ),
        # 1 transfer over 2 answered.
        pytest.param(
            [
                call("answered", "a1", 1, "c1", agent_id="x"),
                call("answered", "a2", 1, "c2", agent_id="x"),
                call("transferred", "t1", 5, "c1", agent_id="x", to_queue="support"),
            ],
            {"transferred": 1, "transfer_rate": 0.5},
            id="transfer-rate",
        ),
        # A transfer with no answer in the window: rate null.
        pytest.param(
            [call("transferred", "t1", 5, agent_id="x", to_agent="y")],
            {"transferred": 1, "transfer_rate": None},
            id="transfer-rate-no-answers",
        ),
    ],
)
def test_handle_time(events: list[Event], expected: dict[str, Any]) -> None:
    figures = kpis(events)
    assert {key: figures[key] for key in expected} == expected


# ---------------------------------------------------------------- satisfaction and resolution


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        # csat: 5 and 4 of 5 satisfied, 3 not; 9 of scale 10 satisfied -> 3 / 4.
        pytest.param(
            [
                survey("r1", "csat", 5),
                survey("r2", "csat", 4, scale_max=5),
                survey("r3", "csat", 3),
                survey("r4", "csat", 9, scale_max=10),
            ],
            {"csat": 0.75, "nps": None, "ces": None},
            id="csat-top-two",
        ),
        # nps: promoters 10, 9; passive 8, 7; detractors 6, 0 -> 100 * (2 - 2) / 6 = 0.
        pytest.param(
            [survey(f"n{s}", "nps", s) for s in (10, 9, 8, 7, 6, 0)],
            {"nps": 0.0, "csat": None},
            id="nps-balanced",
        ),
        # nps: 3 promoters, 1 detractor -> 100 * 2 / 4 = 50.
        pytest.param(
            [survey(f"n{i}", "nps", s) for i, s in enumerate((9, 10, 10, 1))],
            {"nps": 50.0},
            id="nps-positive",
        ),
        # ces: mean of 2, 3, 7.
        pytest.param([survey(f"e{s}", "ces", s) for s in (2, 3, 7)], {"ces": 4.0}, id="ces-mean"),
        # fcr: first_contact omitted counts; false does not; unresolved does not -> 1 / 3.
        # A second resolution of c1 (new id) is ignored.
        pytest.param(
            [
                call("resolved", "f1", 9, "c1", resolved=True),
                call("resolved", "f1b", 9, "c1", resolved=False),
                call("resolved", "f2", 9, "c2", resolved=True, first_contact=False),
                call("resolved", "f3", 9, "c3", resolved=False, first_contact=True),
            ],
            {"fcr_rate": 1 / 3},
            id="fcr",
        ),
        # No resolutions and no surveys: null.
        pytest.param([], {"fcr_rate": None, "csat": None, "nps": None, "ces": None}, id="none"),
    ],
)
def test_satisfaction(events: list[Event], expected: dict[str, Any]) -> None:
    figures = kpis(events)
    assert {key: figures[key] for key in expected} == expected


# ---------------------------------------------------------------- per agent


def test_agent_kpis() -> None:
    events = [
        call("offered", "o1", 0, "c1"),
        call("answered", "a1", 5, "c1", agent_id="x", wait_s=5.0),
        call("answered", "a1b", 6, "c1", agent_id="y"),  # resend with a new id: not y's
        call("answered", "a2", 5, "c2", "support", agent_id="x"),
        call("transferred", "t1", 50, "c2", "support", agent_id="x", to_queue="sales"),
        call("ended", "e1", 100, "c1", agent_id="x", talk_s=90.0, hold_s=5.0),
        call("ended", "e2", 100, "c2", "support", agent_id="x", talk_s=60.0),
        call("wrapup_ended", "w1", 120, "c1", agent_id="x", acw_s=20.0),
        call("ended", "e3", 100, "c3", agent_id="y", talk_s=999.0),  # another agent
        survey("r1", "csat", 5, agent_id="x"),
        survey("r2", "csat", 2, agent_id="x"),
        survey("r3", "csat", 1),  # no agent_id: nobody's
        state("s1", "x", 5, "on_call", ["sales", "support"]),
        state("s2", "x", 100, "acw", ["sales", "support"]),
    ]
    window = {"start_us": T0_US, "end_us": END_US}
    assert reference_agent_kpis(events, agent_id="x", **window) == {
        "answered": 2,
        "aht_s": (95 + 60) / 2 + 20,
        "avg_talk_s": 75.0,
        "avg_hold_s": 2.5,
        "avg_acw_s": 20.0,
        "transferred": 1,
        "csat": 0.5,
        "esat": None,  # no esat survey
        "occupancy": 1.0,  # on call, then in ACW: busy all the staffed time
        "state": "acw",
    }
    assert reference_agent_kpis(events, agent_id="y", **window)["answered"] == 0
    assert reference_agent_kpis(events, agent_id="z", **window)["state"] is None


# ---------------------------------------------------------------- generated histories

HISTORY_S = 7200
WINDOWS = [
    (T0_US, T0_US + HISTORY_S * S),  # the whole history
    (T0_US + 1800 * S, T0_US + 3600 * S),  # a minute-aligned half hour inside it
    (T0_US + 1234_567_891, T0_US + 5432_123_457),  # arbitrary microsecond bounds
]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_duplicated_reordered_delivery_gives_same_figures(seed: int) -> None:
    history = generate_history(seed, start_us=T0_US, duration_s=HISTORY_S)
    delivered = duplicate_and_reorder(history, seed + 100)
    combinations = itertools.product(WINDOWS, ["sales", "support", None])
    for ((start_us, end_us), queue), sl_formula in zip(
        combinations, itertools.cycle(SL_FORMULAS), strict=False
    ):
        window: dict[str, Any] = {"queue": queue, "start_us": start_us, "end_us": end_us}
        window["sl_formula"] = sl_formula
        assert reference_kpis(delivered, **window) == reference_kpis(history, **window)
    start_us, end_us = WINDOWS[1]
    for agent_id in ("a00", "a03", "a07"):
        of_agent: dict[str, Any] = {"agent_id": agent_id, "start_us": start_us, "end_us": end_us}
        assert reference_agent_kpis(delivered, **of_agent) == reference_agent_kpis(
            history, **of_agent
        )


def _ts_form(ts: str | float) -> str:
    if not isinstance(ts, str):
        return "epoch"
    return "Z" if ts.endswith("Z") else "+00:00" if ts.endswith("+00:00") else "other offset"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_history_shape(seed: int) -> None:
    history = generate_history(seed, start_us=T0_US, duration_s=HISTORY_S)
    times = [parse_ts_us(e["ts"]) for e in history]
    assert times == sorted(times)
    assert all(T0_US <= t < T0_US + HISTORY_S * S for t in times)
    assert len({e["event_id"] for e in history}) == len(history)
    outcomes = [e for e in history if e["type"] in ("call.answered", "call.abandoned")]
    assert any("wait_s" in e for e in outcomes) and any("wait_s" not in e for e in outcomes)
    offered_us = {
        (e["queue"], e["call_id"]): t
        for t, e in zip(times, history, strict=True)
        if e["type"] == "call.offered"
    }
    derived_s = [
        (parse_ts_us(e["ts"]) - offered_us[e["queue"], e["call_id"]]) / S for e in outcomes
    ]
    # wait_s, when given, agrees with the timestamps; exact boundary waits occur both ways.
    assert all(e.get("wait_s", w) == w for e, w in zip(outcomes, derived_s, strict=True))
    assert {20.0, 5.0, 20.000001, 4.999999} <= set(derived_s)
    assert {_ts_form(e["ts"]) for e in history} == {"epoch", "Z", "+00:00", "other offset"}
    figures = reference_kpis(history, queue=None, start_us=T0_US, end_us=T0_US + HISTORY_S * S)
    assert figures["answered"] > 0 and figures["abandoned"] > 0 and figures["short_abandoned"] > 0
    assert figures["calls_waiting"] > 0 and figures["agents"]["logged_in"] > 0


def test_reorder_duplicates_and_displaces_boundedly() -> None:
    history = generate_history(7, start_us=T0_US, duration_s=HISTORY_S)
    delivered = duplicate_and_reorder(history, 8, duplicate_fraction=0.2, max_delay_s=30.0)
    assert 1.1 * len(history) < len(delivered) < 1.3 * len(history)
    by_id = {e["event_id"]: e for e in history}
    assert all(by_id[e["event_id"]] == e for e in delivered)
    assert {e["event_id"] for e in delivered} == set(by_id)
    times = [parse_ts_us(e["ts"]) for e in delivered]
    assert times != sorted(times)
    # Bounded: no event arrives after one whose ts is more than 30 s later than its own.
    latest_so_far = list(itertools.accumulate(times, max))
    assert max(latest - t for latest, t in zip(latest_so_far, times, strict=True)) <= 30 * S
    # Some answered arrives before its offered.
    seen_offered: set[str] = set()
    early = 0
    for e in delivered:
        if e["type"] == "call.offered":
            seen_offered.add(e["call_id"])
        elif e["type"] == "call.answered" and e["call_id"] not in seen_offered:
            early += 1
    assert early > 0


def test_reference_and_generator_import_only_the_standard_library() -> None:
    # The oracle must share no code with the service it checks.
    for name in ("reference.py", "streamgen.py"):
        tree = ast.parse((Path(__file__).parents[1] / name).read_text())
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        imported |= {
            node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        }
        roots = {module.split(".")[0] for module in imported}
        assert roots <= set(sys.stdlib_module_names) | {"__future__", "tests"}, roots
