"""The API evaluates alerts a few queues at a time: the same transitions as in one piece, and
the event loop (requests, the changelog feed) runs between the slices."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from typing import Any, cast

import pytest

from api.alerts import service as alert_service
from api.alerts.engine import AlertEngine
from api.alerts.service import AlertService
from tests.unit.test_alert_engine import WAIT_RULE, TableSource, at


def rules(queue: str) -> tuple[Any, ...]:
    return (WAIT_RULE,)


class CountingSource(TableSource):
    """Counts figure reads, and notes how many it saw when another task got to run."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def figures(self, queue: str, window: str, now_us: int) -> Mapping[str, Any]:
        self.reads += 1
        return super().figures(queue, window, now_us)


def service_over(source: TableSource) -> AlertService:
    return AlertService(AlertEngine(rules), source, cast(Any, None), now_us=lambda: at(0))


def queues(source: TableSource, count: int) -> None:
    for number in range(count):
        waiting = 200.0 if number % 3 == 0 else 30.0  # every third queue breaches
        source.set(f"q{number:03d}", longest_wait_s=waiting)


async def test_slices_send_what_one_piece_sends_in_the_same_order() -> None:
    whole, sliced = TableSource(), TableSource()
    queues(whole, 45)
    queues(sliced, 45)
    expected = service_over(whole).evaluate()
    got = await service_over(sliced).evaluate_in_slices()
    assert [(t["queue"], t["status"], t["sequence"]) for t in got] == [
        (t["queue"], t["status"], t["sequence"]) for t in expected
    ]
    assert len(got) == 15


async def test_other_tasks_run_between_slices() -> None:
    source = CountingSource()
    queues(source, 8)
    service = service_over(source)
    service.slice_s = 0.0  # every queue is a slice of its own
    seen = await reads_seen_between_slices(service, source)
    # Reads at which the other task ran mid-way: one evaluation did not hold the loop whole.
    assert [n for n in seen if 0 < n < source.reads]
    steps = [b - a for a, b in itertools.pairwise(seen)]
    assert max(steps) <= 1


class Ticking:
    """A clock that moves on only when a queue's figures are read: each read takes ``step_s``."""

    def __init__(self, source: CountingSource, step_s: float) -> None:
        self.source, self.step_s = source, step_s

    def __call__(self) -> float:
        return self.source.reads * self.step_s


async def test_a_slice_holds_the_queues_that_fit_in_its_time_and_the_round_adds_them_up() -> None:
    source = CountingSource()
    queues(source, 10)
    service = service_over(source)
    service.timer = Ticking(source, 0.0005)
    service.slice_s = 0.002  # four reads
    seen = await reads_seen_between_slices(service, source)
    assert sorted(set(seen)) == [0, 4, 8]  # slices of 4, 4 and the last 2
    assert service.round_busy_s == pytest.approx(10 * 0.0005)
    assert alert_service.rest_after(service.round_busy_s) == alert_service.DEBOUNCE_S


def test_alerts_take_at_most_a_third_of_the_loop() -> None:
    assert alert_service.rest_after(0.001) == alert_service.DEBOUNCE_S  # cheap rounds: debounce
    for round_s in (0.1, 0.5, 2.0):
        rest = alert_service.rest_after(round_s)
        assert round_s / (round_s + rest) <= 1 / 3 + 1e-9


async def reads_seen_between_slices(service: AlertService, source: CountingSource) -> list[int]:
    """One sliced round with another task on the loop: the reads done each time it ran."""
    seen: list[int] = []

    async def request() -> None:
        while True:
            seen.append(source.reads)
            await asyncio.sleep(0)

    other = asyncio.ensure_future(request())
    await asyncio.sleep(0)
    await service.evaluate_in_slices()
    other.cancel()
    return seen
