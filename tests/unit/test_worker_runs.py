"""How stage two cuts a partition's routed messages into runs for the processor, and how many
runs' changelog records it keeps in flight."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

import pytest

from stream.worker import InFlightRuns, _runs_within


@dataclass(frozen=True)
class Routed:
    value: bytes


@pytest.mark.parametrize(
    ("sizes", "limit", "expected"),
    [
        ([], 10, []),
        ([3, 3, 3], 10, [[3, 3, 3]]),
        ([4, 4, 4], 10, [[4, 4], [4]]),  # the third would pass the limit: a new run
        ([5, 5, 5, 5], 10, [[5, 5], [5, 5]]),  # exactly at the limit stays in the run
        ([30, 2, 2], 10, [[30], [2, 2]]),  # a message over the limit is a run of its own
    ],
)
def test_runs_keep_message_order_and_stay_within_the_limit(
    sizes: list[int], limit: int, expected: list[list[int]]
) -> None:
    events = [Routed(b"x" * size) for size in sizes]
    runs: list[list[Any]] = list(_runs_within(cast(Any, events), limit))
    assert [[len(e.value) for e in run] for run in runs] == expected
    assert [e for run in runs for e in run] == events  # every message once, in offset order


async def test_small_runs_are_all_in_flight_together() -> None:
    """A batch's runs (one per partition) are not acknowledged one by one: each would cost a
    broker round trip before the next partition is processed."""
    loop = asyncio.get_running_loop()
    in_flight = InFlightRuns(max_bytes=100)
    sends = [loop.create_future() for _ in range(8)]
    for sent in sends:
        await asyncio.wait_for(in_flight.add(sent, 10), timeout=1.0)  # 80 bytes: none waited


async def test_past_the_limit_the_oldest_runs_are_awaited_first() -> None:
    loop = asyncio.get_running_loop()
    in_flight = InFlightRuns(max_bytes=100)
    first, second, third = (loop.create_future() for _ in range(3))
    await in_flight.add(first, 60)
    adding = asyncio.ensure_future(in_flight.add(second, 60))  # 120 bytes: waits for the first
    await asyncio.sleep(0.01)
    assert not adding.done()
    first.set_result(None)
    await asyncio.wait_for(adding, timeout=1.0)  # the newest run itself stays in flight
    adding = asyncio.ensure_future(in_flight.add(third, 60))
    await asyncio.sleep(0.01)
    assert not adding.done()
    second.set_result(None)
    await asyncio.wait_for(adding, timeout=1.0)
    assert not third.done()
