"""Agent states over time: the state in force at any moment, whatever order events came in."""

from __future__ import annotations

import copy
import itertools
import json
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.kpi.agents import (
    AGENT_STATES,
    HISTORY_CHUNK_US,
    AgentRecord,
    apply_agent_event,
    chunk_start_us,
    count_states,
    new_agent_record,
    state_at,
)

Event = dict[str, Any]


def change(event_id: str, ts_us: int, state: str, queues: list[str] | None = None) -> Event:
    return {
        "event_id": event_id,
        "type": "agent.state",
        "ts_us": ts_us,
        "agent_id": "a1",
        "state": state,
        "queues": ["sales"] if queues is None else queues,
    }


def record_of(*events: Event, agent_id: str = "a1") -> AgentRecord:
    record = new_agent_record(agent_id)
    for event in events:
        apply_agent_event(record, event)
    return record


#   ts       100          200          300
#            available    on_call      acw
#   ---------|------------|------------|-------->
#   state_at: None up to 100 included; available in (100, 200]; on_call in (200, 300]; acw after
DAY = (
    change("e1", 100, "available"),
    change("e2", 200, "on_call"),
    change("e3", 300, "acw"),
)


@pytest.mark.parametrize(
    ("at_us", "expected"),
    [
        (50, None),  # before any change: never seen
        (100, None),  # exactly at the first change: strictly before, so not yet
        (101, "available"),  # just after it
        (200, "available"),  # exactly at the second change: still the first
        (201, "on_call"),  # just after the second
        (300, "on_call"),  # exactly at the last change
        (10**18, "acw"),  # long after: the last state holds
    ],
)
def test_state_at_is_strictly_before(at_us: int, expected: str | None) -> None:
    current = state_at(record_of(*DAY), at_us)
    assert (current[0] if current else None) == expected


def test_state_at_returns_the_queues_of_that_change() -> None:
    record = record_of(change("e1", 100, "available", ["sales", "support"]))
    assert state_at(record, 101) == ("available", ["sales", "support"])


def test_ties_on_ts_go_to_the_later_event_id() -> None:
    record = record_of(change("e9", 100, "paused"), change("e10", 100, "available"))
    # "e9" > "e10" in string order: e9 is the later change.
    current = state_at(record, 101)
    assert current is not None
    assert current[0] == "paused"


def test_every_insertion_order_gives_the_same_record() -> None:
    expected = record_of(*DAY)
    for order in itertools.permutations(DAY):
        assert record_of(*order) == expected


@given(
    st.lists(st.tuples(st.integers(0, 5), st.sampled_from(AGENT_STATES)), max_size=15),
    st.randoms(use_true_random=False),
)
def test_any_insertion_order_keeps_time_then_id_order(
    changes: list[tuple[int, str]], rng: random.Random
) -> None:
    """Times drawn from a few values: ties are common, and ties go by event id."""
    events = [change(f"e{i}", ts, state) for i, (ts, state) in enumerate(changes)]
    in_order = record_of(*sorted(events, key=lambda e: (e["ts_us"], e["event_id"])))
    shuffled = events[:]
    rng.shuffle(shuffled)
    record = new_agent_record("a1")
    for event in shuffled:
        assert apply_agent_event(record, event) is True
        assert apply_agent_event(record, rng.choice(shuffled[: shuffled.index(event) + 1])) is False
    assert record == in_order
    assert record["changes"] == sorted(record["changes"], key=lambda c: (c[0], c[1]))


def test_a_duplicate_event_is_ignored() -> None:
    record = record_of(*DAY)
    before = copy.deepcopy(record)
    assert apply_agent_event(record, copy.deepcopy(DAY[1])) is False
    assert record == before


def test_a_new_event_is_applied() -> None:
    record = record_of(*DAY)
    assert apply_agent_event(record, change("e4", 250, "paused")) is True
    assert state_at(record, 251) == ("paused", ["sales"])


def test_missing_queues_mean_no_queue() -> None:
    event = change("e1", 100, "logged_out")
    del event["queues"]
    assert state_at(record_of(event), 101) == ("logged_out", [])


def test_the_record_is_plain_json() -> None:
    record = record_of(*DAY)
    assert json.loads(json.dumps(record)) == record


def test_a_change_belongs_to_the_hour_it_happened_in() -> None:
    hour = 1_709_287_200 * 1_000_000  # 2024-03-01T10:00:00Z
    assert chunk_start_us(hour) == hour
    assert chunk_start_us(hour + HISTORY_CHUNK_US - 1) == hour
    assert chunk_start_us(hour + HISTORY_CHUNK_US) == hour + HISTORY_CHUNK_US
    assert chunk_start_us(hour - 1) == hour - HISTORY_CHUNK_US
    assert HISTORY_CHUNK_US == 3600 * 1_000_000


# -- counting ----------------------------------------------------------------------------------

TEAM = [
    record_of(change("e1", 100, "available", ["sales"]), agent_id="a1"),
    record_of(change("e2", 100, "on_call", ["sales", "support"]), agent_id="a2"),
    record_of(change("e3", 100, "paused", ["support"]), agent_id="a3"),
    record_of(
        change("e4", 100, "available", ["sales"]),
        change("e5", 200, "logged_out", []),
        agent_id="a4",
    ),
    record_of(change("e6", 500, "available", ["sales"]), agent_id="a5"),  # not seen yet at 300
]


def counts(**non_zero: int) -> dict[str, int]:
    return {**dict.fromkeys((*AGENT_STATES, "logged_in"), 0), **non_zero}


@pytest.mark.parametrize(
    ("queue", "at_us", "expected"),
    [
        # every agent: a4 logged out (with no queues), a5 not seen yet
        (None, 300, counts(available=1, on_call=1, paused=1, logged_out=1, logged_in=3)),
        # sales: a1 and a2 (a2 serves two queues); a4's logged_out lists no queue
        ("sales", 300, counts(available=1, on_call=1, logged_in=2)),
        # support: a2 and a3
        ("support", 300, counts(on_call=1, paused=1, logged_in=2)),
        # before a4 logged out: it is available in sales
        ("sales", 150, counts(available=2, on_call=1, logged_in=3)),
        # a queue nobody serves: all zero
        ("billing", 300, counts()),
        # before anybody: all zero, the keys still there
        (None, 50, counts()),
    ],
)
def test_count_states(queue: str | None, at_us: int, expected: dict[str, int]) -> None:
    assert count_states(TEAM, at_us, queue) == expected
