"""Calls waiting and the longest wait at a bucket boundary, for any past or present moment.

A call is waiting at ``t`` when it was offered before ``t`` and its wait ended at or after ``t``.
Once a call's wait is over, it is added to every one-minute boundary it waited across (a call
rarely spans more than a few); calls still waiting are in the queue's live set. Calls waiting at
boundary ``t`` = crossings recorded at ``t`` + live calls offered before ``t``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from stream.kpi.timeutil import BUCKET_US, US_PER_S, bucket_start_us


@dataclass(slots=True)
class BoundaryWaiting:
    """Calls whose finished wait spanned one boundary, and the earliest offer among them."""

    count: int = 0
    oldest_offered_us: int | None = None

    def add(self, offered_us: int) -> None:
        self.count += 1
        if self.oldest_offered_us is None or offered_us < self.oldest_offered_us:
            self.oldest_offered_us = offered_us

    def merge(self, other: BoundaryWaiting) -> None:
        self.count += other.count
        if other.oldest_offered_us is not None and (
            self.oldest_offered_us is None or other.oldest_offered_us < self.oldest_offered_us
        ):
            self.oldest_offered_us = other.oldest_offered_us

    def to_json(self) -> dict[str, int | None]:
        return {"n": self.count, "oldest": self.oldest_offered_us}

    @classmethod
    def from_json(cls, data: Mapping[str, int | None]) -> BoundaryWaiting:
        count = data["n"]
        return cls(count if count is not None else 0, data["oldest"])


def boundaries_waited(offered_us: int, ended_us: int, bucket_us: int = BUCKET_US) -> range:
    """Bucket boundaries ``t`` with ``offered_us < t <= ended_us``."""
    first = bucket_start_us(offered_us, bucket_us) + bucket_us
    return range(first, ended_us + 1, bucket_us)


@dataclass(frozen=True, slots=True)
class WaitingNow:
    calls_waiting: int
    longest_wait_s: float | None


# A call waiting longer than this lost its ending event: it is no longer believed waiting.
MAX_CALL_WAIT_US = 4 * 3600 * US_PER_S


def waiting_at(
    at_us: int,
    crossings: BoundaryWaiting | None,
    live_offered_us: Iterable[int],
    max_wait_us: int = MAX_CALL_WAIT_US,
) -> WaitingNow:
    """Calls waiting at boundary ``at_us`` and the age of the oldest, from both sources.

    A live call counts while it has waited at most ``max_wait_us``: one that lost its ending
    event stays in the live set (so earlier boundaries still see it) but stops counting then.
    """
    count = crossings.count if crossings is not None else 0
    oldest = crossings.oldest_offered_us if crossings is not None else None
    for offered_us in live_offered_us:
        if offered_us < at_us and at_us - offered_us <= max_wait_us:
            count += 1
            if oldest is None or offered_us < oldest:
                oldest = offered_us
    longest = None if oldest is None or count == 0 else (at_us - oldest) / US_PER_S
    return WaitingNow(count, longest)
