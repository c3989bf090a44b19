"""Stage two processes every routed message, in offset order, with no gap.

Faust 0.15 can lose messages of a partition around a rebalance: records fetched while its
recovery resumes partitions, seeks and resumes flow are dropped unseen (flow-control queues
cleared on resume, read offsets already past them, events of an older generation skipped) and
it acks the skipped ones, so its commits pass them too. Under load, the scale-out test's
survivor lost hundreds of events that way. So stage two keeps its own account: the next offset
it expects on each routed partition. Messages below it were processed already (a replay: left
out); a message above it means some were lost on the way, and the partition is sought back to
it. The routed topic is written by stage one only (no compaction, no transactions), so its
offsets have no gaps of their own. Its offsets are committed from here, only once processed
(the topic's Faust acks are off): a partition's next owner starts where this one finished.

Pure bookkeeping; the worker does the seeking and committing (``stream.worker``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Accepted:
    """Which of a partition's messages (``offsets[first:stop]``) to process, and where to
    seek back to when some went missing before the rest (None: nothing missing)."""

    first: int
    stop: int
    rewind_to: int | None


class RoutedContinuity:
    def __init__(self) -> None:
        self._expected: dict[int, int] = {}
        self._committed: dict[int, int] = {}

    def knows(self, partition: int) -> bool:
        return partition in self._expected

    def expected(self, partition: int) -> int:
        return self._expected[partition]

    def start_at(self, partition: int, offset: int) -> None:
        """Where a newly owned partition starts: its group commit, or its first offset."""
        self._expected[partition] = offset

    def accept(self, partition: int, offsets: list[int]) -> Accepted:
        """``offsets``: a partition's messages in a batch, ascending (``start_at`` first)."""
        expected = self._expected[partition]
        first = 0
        while first < len(offsets) and offsets[first] < expected:
            first += 1  # processed already: fetched again after a seek or a rebalance
        stop = first
        while stop < len(offsets) and offsets[stop] == expected + (stop - first):
            stop += 1
        rewind_to = None if stop == len(offsets) else expected + (stop - first)
        return Accepted(first, stop, rewind_to)

    def processed(self, partition: int, last_offset: int) -> None:
        """The partition's messages up to ``last_offset`` are processed and their changelog
        records acknowledged."""
        if partition in self._expected:  # else forgotten meanwhile: its next owner replays
            self._expected[partition] = max(self._expected[partition], last_offset + 1)

    def to_commit(self) -> dict[int, int]:
        """Each partition's next offset, where it moved since the last call."""
        moved = {p: o for p, o in self._expected.items() if self._committed.get(p) != o}
        self._committed.update(moved)
        return moved

    def not_committed(self, partitions: Iterable[int]) -> None:
        """A commit of ``to_commit``'s offsets failed: offered again next time."""
        for partition in partitions:
            self._committed.pop(partition, None)

    def forget(self) -> None:
        """A rebalance: the next owner of each partition starts from its group commit."""
        self._expected.clear()
        self._committed.clear()
