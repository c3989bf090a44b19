"""What one message changes, gathered before anything is written (``stream.processor``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from stream.kpi.accumulator import KpiAccumulator
from stream.kpi.contacts import ContactFacts
from stream.kpi.timeutil import bucket_start_us
from stream.kpi.waiting import BoundaryWaiting, boundaries_waited


def _bucket_of(deltas: dict[int, KpiAccumulator], ts_us: int) -> KpiAccumulator:
    bucket = bucket_start_us(ts_us)
    acc = deltas.get(bucket)
    if acc is None:
        acc = deltas[bucket] = KpiAccumulator()
    return acc


@dataclass(slots=True)
class QueueChanges:
    """What one message changes in one queue; the call and ticket state machines' sink."""

    queue_deltas: dict[int, KpiAccumulator] = field(default_factory=dict)
    agent_deltas: dict[tuple[str, int], KpiAccumulator] = field(default_factory=dict)
    boundaries: dict[int, BoundaryWaiting] = field(default_factory=dict)
    live_ops: list[tuple[str, int | None]] = field(default_factory=list)
    facts: dict[int, ContactFacts] = field(default_factory=dict)

    def queue_bucket(self, ts_us: int) -> KpiAccumulator:
        return _bucket_of(self.queue_deltas, ts_us)

    def agent_bucket(self, agent_id: str, ts_us: int) -> KpiAccumulator:
        slot = (agent_id, bucket_start_us(ts_us))
        acc = self.agent_deltas.get(slot)
        if acc is None:
            acc = self.agent_deltas[slot] = KpiAccumulator()
        return acc

    def contact_facts(self, ts_us: int) -> ContactFacts:
        return self.facts.setdefault(bucket_start_us(ts_us), ContactFacts())

    def waiting_started(self, call_id: str, offered_us: int) -> None:
        self.live_ops.append((call_id, offered_us))

    def waiting_ended(self, call_id: str, offered_us: int, ended_us: int) -> None:
        self.live_ops.append((call_id, None))
        for boundary in boundaries_waited(offered_us, ended_us):
            self.boundaries.setdefault(boundary, BoundaryWaiting()).add(offered_us)


@dataclass(slots=True)
class CentreChanges:
    """Events that belong to no queue (kb reads without one, customers), by minute and ever."""

    deltas: dict[int, KpiAccumulator] = field(default_factory=dict)
    all_time: KpiAccumulator = field(default_factory=KpiAccumulator)

    def bucket(self, ts_us: int) -> KpiAccumulator:
        return _bucket_of(self.deltas, ts_us)


@dataclass(slots=True)
class RoutingTotals:
    events: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0


@dataclass(slots=True)
class MessageOutcome:
    processed: int = 0
    duplicates: int = 0
    changed_queues: set[str] = field(default_factory=set)

    def absorb(self, other: MessageOutcome) -> None:
        self.processed += other.processed
        self.duplicates += other.duplicates
        self.changed_queues |= other.changed_queues
