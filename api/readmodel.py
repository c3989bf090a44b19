"""The API's in-memory view of the worker's state table, fed from its compacted changelog.

Every API replica holds the whole view (it is small: per-minute accumulators per queue), so any
replica answers for any queue and the API scales without touching the stream.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from typing import Any

from api.compact import (
    StoredChanges,
    indexed_facts,
    joined_agent,
    stored_accumulator,
    stored_facts,
)
from stream import records
from stream.kpi.accumulator import KpiAccumulator
from stream.kpi.agents import AgentRecord
from stream.kpi.contacts import CallerIndex, ContactFacts
from stream.kpi.waiting import BoundaryWaiting


@dataclass(slots=True)
class QueueView:
    buckets: dict[int, KpiAccumulator] = field(default_factory=dict)
    boundaries: dict[int, BoundaryWaiting] = field(default_factory=dict)
    live: dict[str, int] = field(default_factory=dict)
    totals: KpiAccumulator = field(default_factory=KpiAccumulator)
    contacts: dict[int, ContactFacts] = field(default_factory=dict)


@dataclass(slots=True)
class RoutingTotals:
    events: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0


class ReadModel:
    """Applies changelog records; readers query it. Single event loop, no locks needed."""

    def __init__(self) -> None:
        self.queues: dict[str, QueueView] = {}
        self.agent_buckets: dict[str, dict[str, dict[int, KpiAccumulator]]] = {}
        self.agents: dict[str, AgentRecord] = {}  # each agent's whole history, joined
        self.agent_chunks: dict[str, dict[int, StoredChanges]] = {}  # by hour, as stored
        # Queue -> agents whose retained history names it: a queue's figures read only those.
        self.agents_by_queue: dict[str, set[str]] = {}
        self.routing: dict[str, RoutingTotals] = {}
        # Events of no queue (kb reads without one, customers): per writing partition.
        self.centre_buckets: dict[str, dict[int, KpiAccumulator]] = {}
        self.centre_totals: dict[str, KpiAccumulator] = {}
        self.callers = CallerIndex()  # every offer with a caller, for the repeat-caller rule
        self.invalid_by_reason: dict[str, int] = {}
        self.version = 0
        self.changed = asyncio.Event()

    def agents_of(self, queue: str | None) -> list[AgentRecord]:
        """The agents that served ``queue`` at some time of the retention (None: every agent)."""
        if queue is None:
            return list(self.agents.values())
        return [self.agents[a] for a in sorted(self.agents_by_queue.get(queue, ()))]

    def queue(self, name: str) -> QueueView:
        view = self.queues.get(name)
        if view is None:
            view = self.queues[name] = QueueView()
        return view

    def apply(self, record_key: str, value: dict[str, Any] | None) -> None:
        parts = records.split_key(record_key)
        family = parts[0]
        if family not in records.READ_MODEL_FAMILIES:
            return
        handler = _HANDLERS[family]
        handler(self, parts, value)
        self.version += 1
        self.changed.set()

    def count_invalid(self, reason: str) -> None:
        self.invalid_by_reason[reason] = self.invalid_by_reason.get(reason, 0) + 1

    def known_queues(self) -> list[str]:
        return sorted(self.queues)


# A minute's start is the key of a record in every queue, agent and family: one int object
# each (32 bytes, about 800,000 keys for a day), not one per record. Capped, so it cannot grow
# without end: clearing it only stops new keys sharing the old objects.
_MINUTES: dict[str, int] = {}
_MAX_MINUTES = 50_000


def _minute(bucket: str) -> int:
    minute = _MINUTES.get(bucket)
    if minute is None:
        if len(_MINUTES) >= _MAX_MINUTES:
            _MINUTES.clear()
        minute = _MINUTES[bucket] = int(bucket)
    return minute


def _put(target: dict[Any, Any], slot: Any, value: Any | None) -> None:
    if value is None:
        target.pop(slot, None)
    else:
        target[slot] = value


def _on_bucket(model: ReadModel, parts: list[str], value: dict[str, Any] | None) -> None:
    _, queue, bucket = parts
    acc = stored_accumulator(value["acc"]) if value else None
    _put(model.queue(queue).buckets, _minute(bucket), acc)


def _on_agent_bucket(model: ReadModel, parts: list[str], value: dict[str, Any] | None) -> None:
    _, queue, agent_id, bucket = parts
    if value is not None:
        per_queue = model.agent_buckets.setdefault(agent_id, {}).setdefault(queue, {})
        per_queue[_minute(bucket)] = stored_accumulator(value["acc"])
        return
    # A tombstone: prune emptied levels, so every replica knows the same agents.
    queues = model.agent_buckets.get(agent_id, {})
    queues.get(queue, {}).pop(_minute(bucket), None)
    if not queues.get(queue, True):
        del queues[queue]
    if not queues:
        model.agent_buckets.pop(agent_id, None)


def _on_boundary(model: ReadModel, parts: list[str], value: dict[str, Any] | None) -> None:
    _, queue, boundary = parts
    crossing = BoundaryWaiting.from_json(value) if value else None
    _put(model.queue(queue).boundaries, _minute(boundary), crossing)


def _on_live(model: ReadModel, parts: list[str], value: dict[str, Any] | None) -> None:
    calls = value["calls"].items() if value else ()
    # Interned: the caller index and the minutes' facts name the same calls.
    model.queue(parts[1]).live = {sys.intern(call_id): offered for call_id, offered in calls}


def _on_totals(model: ReadModel, parts: list[str], value: dict[str, Any] | None) -> None:
    routing = parts[1]
    if value is None:
        model.routing.pop(routing, None)
        return
    model.routing[routing] = RoutingTotals(dict(value["events"]), int(value["duplicates"]))
    if routing.startswith("q:"):
        model.queue(routing[2:]).totals = KpiAccumulator.from_json(value["acc"])


LEGACY_HISTORY = -1  # the chunk key of an agent's history written whole (``g|agent``)


def _on_agent(model: ReadModel, parts: list[str], value: dict[str, Any] | None) -> None:
    agent_id = parts[1]
    # A whole history as workers before the hour chunks wrote it: before every hour.
    chunk = int(parts[2]) if len(parts) > 2 else LEGACY_HISTORY
    chunks = model.agent_chunks.setdefault(agent_id, {})
    _put(chunks, chunk, StoredChanges(value["changes"]) if value else None)
    before = model.agents.get(agent_id)
    after = joined_agent(agent_id, [chunks[start] for start in sorted(chunks)]) if chunks else None
    if not chunks:
        del model.agent_chunks[agent_id]
    queues_after = _queues_of(after)
    for queue in _queues_of(before) - queues_after:
        agents = model.agents_by_queue[queue]
        agents.discard(agent_id)
        if not agents:
            del model.agents_by_queue[queue]
    for queue in queues_after:
        model.agents_by_queue.setdefault(queue, set()).add(agent_id)
    _put(model.agents, agent_id, after)


def _queues_of(record: AgentRecord | None) -> set[str]:
    if record is None:
        return set()
    changes: StoredChanges = record["changes"]
    return changes.queues()


def _on_contacts(model: ReadModel, parts: list[str], value: dict[str, Any] | None) -> None:
    _, queue, bucket = parts
    queue = sys.intern(queue)  # held by every call of the caller index
    facts = stored_facts(value) if value else None
    minutes = model.queue(queue).contacts
    model.callers.replace_facts(queue, minutes.get(_minute(bucket)), facts)
    _put(minutes, _minute(bucket), indexed_facts(facts) if facts else None)


def _on_centre_bucket(model: ReadModel, parts: list[str], value: dict[str, Any] | None) -> None:
    _, partition, bucket = parts
    acc = stored_accumulator(value["acc"]) if value else None
    _put(model.centre_buckets.setdefault(partition, {}), _minute(bucket), acc)


def _on_centre_totals(model: ReadModel, parts: list[str], value: dict[str, Any] | None) -> None:
    _put(model.centre_totals, parts[1], KpiAccumulator.from_json(value["acc"]) if value else None)


_HANDLERS = {
    records.BUCKET: _on_bucket,
    records.AGENT_BUCKET: _on_agent_bucket,
    records.BOUNDARY: _on_boundary,
    records.LIVE: _on_live,
    records.TOTALS: _on_totals,
    records.AGENT: _on_agent,
    records.CONTACTS: _on_contacts,
    records.CENTRE_BUCKET: _on_centre_bucket,
    records.CENTRE_TOTALS: _on_centre_totals,
}
