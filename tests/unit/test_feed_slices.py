"""The feed applies a fetch's records in slices once caught up, so requests run in between."""

from __future__ import annotations

import asyncio

from api.feed import apply_in_slices


def _interleaving(messages: int, slice_size: int | None) -> tuple[list[int], list[int]]:
    """Applied messages in order, and how many had been applied each time a concurrent
    task got the loop while the feed was applying."""
    applied: list[int] = []
    seen: list[int] = []

    async def main() -> None:
        stop = asyncio.Event()

        async def other_task() -> None:
            while not stop.is_set():
                seen.append(len(applied))
                await asyncio.sleep(0)

        task = asyncio.create_task(other_task())
        await asyncio.sleep(0)  # the other task is waiting for the loop
        await apply_in_slices(list(range(messages)), applied.append, slice_size)
        stop.set()
        await task

    asyncio.run(main())
    return applied, seen


def test_every_record_is_applied_once_in_order_with_the_loop_between_slices() -> None:
    applied, seen = _interleaving(1000, 200)
    assert applied == list(range(1000))
    # The other task ran after each slice of 200, never in the middle of one.
    assert [n for n in seen if 0 < n < 1000] == [200, 400, 600, 800]


def test_without_slices_a_fetch_is_applied_in_one_go() -> None:
    applied, seen = _interleaving(1000, None)
    assert applied == list(range(1000))
    assert [n for n in seen if 0 < n < 1000] == []
