"""The worker's collector: a batch's survivors are frozen, frozen cyclic garbage is reclaimed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from callpulse.heap import SPACING, BatchCollector


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def thawed_heap() -> Iterator[None]:
    gc.collect()
    yield
    gc.unfreeze()
    gc.collect()


def cycle() -> weakref.ref[Node]:
    """A two-node cycle nobody references: only a collection can free it."""
    first, second = Node(), Node()
    first.other, second.other = second, first
    return weakref.ref(first)


def test_survivors_of_a_batch_are_out_of_the_collectors_scans() -> None:
    collector = BatchCollector(clock=Clock())
    kept = [Node() for _ in range(1_000)]
    frozen_before = gc.get_freeze_count()
    collector.after_batch()
    assert gc.get_freeze_count() >= frozen_before + len(kept)
    assert gc.get_count()[0] < len(kept)  # the young generation no longer holds them


def test_cyclic_garbage_frozen_with_a_batch_is_reclaimed_at_the_next_full_collection() -> None:
    clock = Clock()
    collector = BatchCollector(every_s=60.0, clock=clock)
    garbage = cycle()
    collector.after_batch()  # frozen while still uncollected
    gc.collect()
    assert garbage() is not None, "a frozen cycle survives ordinary collections"
    clock.now += 59.0
    collector.after_batch()
    gc.collect()
    assert garbage() is not None
    clock.now += 1.0
    collector.after_batch()
    assert garbage() is None
    assert collector.full_collections == 1


def test_garbage_stays_bounded_over_many_batches() -> None:
    """Each batch leaves a cycle behind: what is frozen and dead never exceeds a period's."""
    clock = Clock()
    collector = BatchCollector(every_s=100.0, clock=clock)
    left: list[weakref.ref[Node]] = []
    for _ in range(200):
        left.append(cycle())
        collector.after_batch()
        clock.now += 10.0
    alive = sum(ref() is not None for ref in left)
    assert 0 < alive <= 11
    assert collector.full_collections == 19


def test_a_slow_full_collection_is_spaced_out() -> None:
    clock = Clock()
    collector = BatchCollector(every_s=0.0, clock=clock)
    collector.after_batch()
    assert collector.full_collections == 1
    collector.after_batch()  # due again only SPACING times the collection's duration later
    assert collector.full_collections == 1
    clock.now += SPACING * 10.0  # longer than any collection of this small heap can take
    collector.after_batch()
    assert collector.full_collections == 2


def test_a_thawed_heap_is_collected_whole_and_at_the_next_batch_end() -> None:
    """A rebalance: Faust's own collections must reach what earlier batches froze."""
    clock = Clock()
    collector = BatchCollector(every_s=3600.0, clock=clock)
    garbage = cycle()
    collector.after_batch()
    collector.thaw()
    gc.collect()
    assert garbage() is None
    collector.after_batch()
    assert collector.full_collections == 1
