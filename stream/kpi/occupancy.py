"""Agent time in state over a window, and occupancy, from the agents' state histories.

An agent's record (``stream.kpi.agents``) holds its state changes in time order, so the time it
spent in each state between two instants is exact at read time: the segments between changes,
clipped to the window. No per-second or per-bucket writes are needed.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from stream.kpi.agents import AgentRecord, Transition
from stream.kpi.timeutil import US_PER_S

BUSY_STATES = frozenset({"on_call", "acw"})  # talk, hold and after-call work
STAFFED_STATES = frozenset({"available", "on_call", "acw"})  # logged in and not paused


def time_in_states_us(
    record: AgentRecord, start_us: int, stop_us: int, queue: str | None = None
) -> dict[str, int]:
    """Microseconds spent in each state within ``[start_us, stop_us)``.

    A state counts from its change to the next change. With ``queue``, only while the change in
    force lists that queue (an agent serves the queues of its latest ``agent.state``).
    """
    spent: dict[str, int] = {}
    if stop_us <= start_us:
        return spent
    changes: list[Transition] = record["changes"]
    # The change in force at start_us is the last one strictly before it (as in state_at).
    first = max(bisect.bisect_left(changes, start_us, key=lambda c: c[0]) - 1, 0)
    for index in range(first, len(changes)):
        since_us, _, state, queues = changes[index]
        if since_us >= stop_us:
            break
        until_us = changes[index + 1][0] if index + 1 < len(changes) else stop_us
        begin, end = max(since_us, start_us), min(until_us, stop_us)
        if end <= begin or (queue is not None and queue not in queues):
            continue
        spent[state] = spent.get(state, 0) + end - begin
    return spent


def occupancy_parts_us(
    records: Iterable[AgentRecord], start_us: int, stop_us: int, queue: str | None = None
) -> tuple[int, int]:
    """(busy, staffed) microseconds summed over agents: occupancy's numerator and denominator."""
    busy = staffed = 0
    for record in records:
        spent = time_in_states_us(record, start_us, stop_us, queue)
        busy += sum(us for state, us in spent.items() if state in BUSY_STATES)
        staffed += sum(us for state, us in spent.items() if state in STAFFED_STATES)
    return busy, staffed


def occupancy(busy_us: int, staffed_us: int) -> float | None:
    """(talk + hold + ACW time) / (logged-in time - paused time); None with no staffed time."""
    return busy_us / staffed_us if staffed_us else None


def seconds(us: int) -> float:
    return us / US_PER_S
