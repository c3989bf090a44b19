"""Time in state and occupancy from an agent's state history.

10:00      10:10         10:20     10:30      10:40
  |available|  on_call     | acw     | paused   | logged_out
  (queues [sales]; from 10:20 [sales, vip])
"""

from __future__ import annotations

import pytest

from stream.kpi.agents import apply_agent_event, new_agent_record
from stream.kpi.occupancy import occupancy, occupancy_parts_us, time_in_states_us
from stream.kpi.timeutil import US_PER_S

T0 = 1_709_287_200 * US_PER_S
M = 60 * US_PER_S
CHANGES = [
    (0, "available", ["sales"]),
    (10, "on_call", ["sales"]),
    (20, "acw", ["sales", "vip"]),
    (30, "paused", ["sales", "vip"]),
    (40, "logged_out", []),
]


def record() -> dict[str, object]:
    agent = new_agent_record("a1")
    for minute, state, queues in CHANGES:
        event = {"event_id": f"g{minute}", "ts_us": T0 + minute * M, "state": state,
                 "queues": queues}  # fmt: skip
        apply_agent_event(agent, event)
    return agent


@pytest.mark.parametrize(
    ("start_m", "stop_m", "queue", "spent_m"),
    [
        (0, 40, None, {"available": 10, "on_call": 10, "acw": 10, "paused": 10}),  # all of it
        (5, 15, None, {"available": 5, "on_call": 5}),  # a window across a change
        (0, 40, "vip", {"acw": 10, "paused": 10}),  # only while the agent serves vip
        (-10, 0, None, {}),  # before the first change: unknown, not counted
        (45, 60, None, {"logged_out": 15}),  # the last state lasts until the stop
        (20, 20, None, {}),  # an empty window
    ],
)
def test_time_in_states(
    start_m: int, stop_m: int, queue: str | None, spent_m: dict[str, int]
) -> None:
    spent = time_in_states_us(record(), T0 + start_m * M, T0 + stop_m * M, queue)
    assert spent == {state: minutes * M for state, minutes in spent_m.items()}


@pytest.mark.parametrize(
    ("start_m", "stop_m", "queue", "expected"),
    [
        (0, 40, None, 20 / 30),  # on call + ACW over available + on call + ACW (paused out)
        (10, 30, None, 1.0),  # busy all the staffed time
        (0, 10, None, 0.0),  # available only: staffed, idle
        (30, 60, None, None),  # paused then logged out: no staffed time, null
        (0, 40, "vip", 1.0),  # vip only sees the ACW part
    ],
)
def test_occupancy(start_m: int, stop_m: int, queue: str | None, expected: float | None) -> None:
    busy, staffed = occupancy_parts_us([record()], T0 + start_m * M, T0 + stop_m * M, queue)
    assert occupancy(busy, staffed) == expected


def test_agents_add_up() -> None:
    busy, staffed = occupancy_parts_us([record(), record()], T0, T0 + 40 * M)
    assert (busy, staffed) == (40 * M, 60 * M)
