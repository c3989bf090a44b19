"""Stage two of the worker: apply one Kafka message's events to the state table.

Pure of Faust: it works on any mutable mapping of records (a Faust table in the worker, a dict
in unit tests). Exactness without transactions rests on two rules:

1. Every record is written only while processing its own partition, once per message, with
   the message offset as a fence (``_o``). Replaying a message after a crash skips the
   records that already hold its effect.
2. Aggregates are written before the call states and dedupe marks that decide whether an
   event counts. The changelog keeps writes in order, so a crash leaves a prefix: either an
   event's dedupe mark is missing (it is re-applied, and fenced aggregates ignore it) or every
   aggregate it touched is already written.

Stored objects are never mutated in place: Faust serialises changelog values later, so a value
handed to the table must not change afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from stream import records
from stream.kpi.accumulator import KpiAccumulator
from stream.kpi.agents import AgentRecord, apply_agent_event, new_agent_record, prune_changes
from stream.kpi.callstate import CallState, apply_call_event, call_wait_finished, new_call_state
from stream.kpi.config import CentreConfig
from stream.kpi.timeutil import US_PER_S, bucket_start_us
from stream.kpi.waiting import BoundaryWaiting, boundaries_waited
from stream.records import OFFSET_FIELD, PARTITION_FIELD, key

Record = dict[str, Any]
Event = dict[str, Any]


class RecordStore(Protocol):
    def get(self, key: str) -> Record | None: ...

    def __setitem__(self, key: str, value: Record) -> None: ...

    def __delitem__(self, key: str) -> None: ...

    def items(self) -> Iterable[tuple[str, Record]]: ...


@dataclass(frozen=True, slots=True)
class Retention:
    """How long the worker keeps each kind of state (seconds)."""

    buckets_s: float = 3 * 86400  # `at` up to 48 h back, plus a whole `today` before it
    call_state_s: float = 2 * 3600  # after a call's last event: duplicates later than this count
    max_call_wait_s: float = 4 * 3600  # a call waiting longer lost its ending event
    expiry_every_s: float = 60.0


@dataclass(slots=True)
class QueueChanges:
    """What one message changes in one queue; implements the call state machine's sink."""

    queue_deltas: dict[int, KpiAccumulator] = field(default_factory=dict)
    agent_deltas: dict[tuple[str, int], KpiAccumulator] = field(default_factory=dict)
    boundaries: dict[int, BoundaryWaiting] = field(default_factory=dict)
    live_ops: list[tuple[str, int | None]] = field(default_factory=list)

    def queue_bucket(self, ts_us: int) -> KpiAccumulator:
        bucket = bucket_start_us(ts_us)
        acc = self.queue_deltas.get(bucket)
        if acc is None:
            acc = self.queue_deltas[bucket] = KpiAccumulator()
        return acc

    def agent_bucket(self, agent_id: str, ts_us: int) -> KpiAccumulator:
        slot = (agent_id, bucket_start_us(ts_us))
        acc = self.agent_deltas.get(slot)
        if acc is None:
            acc = self.agent_deltas[slot] = KpiAccumulator()
        return acc

    def waiting_started(self, call_id: str, offered_us: int) -> None:
        self.live_ops.append((call_id, offered_us))

    def waiting_ended(self, call_id: str, offered_us: int, ended_us: int) -> None:
        self.live_ops.append((call_id, None))
        for boundary in boundaries_waited(offered_us, ended_us):
            self.boundaries.setdefault(boundary, BoundaryWaiting()).add(offered_us)


@dataclass(slots=True)
class RoutingTotals:
    events: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0


@dataclass(slots=True)
class MessageOutcome:
    processed: int = 0
    duplicates: int = 0
    changed_queues: set[str] = field(default_factory=set)


class MessageProcessor:
    def __init__(self, centre: CentreConfig, retention: Retention | None = None) -> None:
        self.centre = centre
        self.retention = retention or Retention()
        self._last_expiry_us: dict[int, int] = {}

    def process(
        self,
        store: RecordStore,
        events: Iterable[Event],
        *,
        offset: int,
        partition: int,
        now_us: int,
    ) -> MessageOutcome:
        work = _MessageWork(store, self.centre, offset, partition, now_us, self.retention)
        for event in events:
            work.apply(event)
        work.flush()
        self._maybe_expire(store, partition, offset, now_us)
        return work.outcome

    def _maybe_expire(self, store: RecordStore, partition: int, offset: int, now_us: int) -> None:
        last = self._last_expiry_us.get(partition)
        if last is not None and now_us - last < self.retention.expiry_every_s * US_PER_S:
            return
        self._last_expiry_us[partition] = now_us
        expire_partition(store, partition, offset, now_us, self.retention)


class _MessageWork:
    """The state one message reads and writes, loaded once and written once."""

    def __init__(
        self,
        store: RecordStore,
        centre: CentreConfig,
        offset: int,
        partition: int,
        now_us: int,
        retention: Retention,
    ) -> None:
        self.store, self.centre, self.retention = store, centre, retention
        self.offset, self.partition, self.now_us = offset, partition, now_us
        self.queues: dict[str, QueueChanges] = {}
        self.calls: dict[str, CallState] = {}
        self.agents: dict[str, AgentRecord] = {}
        self.seen: dict[str, bool] = {}
        self.totals: dict[str, RoutingTotals] = {}
        self.outcome = MessageOutcome()

    # -- applying events -------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        kind: str = event["type"]
        routing = self.totals.setdefault(records.routing_key(event), RoutingTotals())
        routing.events[kind] = routing.events.get(kind, 0) + 1
        self.outcome.processed += 1
        call_event = kind.startswith("call.")
        counted = self._apply_call(event) if call_event else self._apply_other(event)
        if not counted:
            routing.duplicates += 1
            self.outcome.duplicates += 1

    def _apply_call(self, event: Event) -> bool:
        queue: str = event["queue"]
        call_key = key(records.CALL, queue, event["call_id"])
        state = self.calls.get(call_key)
        if state is None:
            stored = self.store.get(call_key)
            state = _copy_call(stored) if stored else new_call_state(event["call_id"])
            self.calls[call_key] = state
        counted = apply_call_event(state, event, self._queue(queue), self.centre.for_queue(queue))
        if counted:
            self.outcome.changed_queues.add(queue)
        return counted

    def _apply_other(self, event: Event) -> bool:
        seen_key = key(records.SEEN, event["event_id"])
        if seen_key in self.seen or self.store.get(seen_key) is not None:
            return False
        self.seen[seen_key] = True
        kind = event["type"]
        if kind == "survey.response" and "score" in event:
            changes = self._queue(event["queue"])
            scale_max = event.get("scale_max")
            for acc in _survey_targets(changes, event):
                acc.add_survey(event["survey"], float(event["score"]), scale_max)
            self.outcome.changed_queues.add(event["queue"])
        elif kind == "agent.state":
            # The agent's own history also knows its events, longer than seen marks last.
            return apply_agent_event(self._agent(event["agent_id"]), event)
        return True

    def _queue(self, queue: str) -> QueueChanges:
        changes = self.queues.get(queue)
        if changes is None:
            changes = self.queues[queue] = QueueChanges()
        return changes

    def _agent(self, agent_id: str) -> AgentRecord:
        record = self.agents.get(agent_id)
        if record is None:
            stored = self.store.get(key(records.AGENT, agent_id))
            record = new_agent_record(agent_id)
            if stored is not None:
                record["changes"] = list(stored["changes"])
                record[OFFSET_FIELD] = stored.get(OFFSET_FIELD, -1)
            self.agents[agent_id] = record
        return record

    # -- writing ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Aggregates first, then the states that say which events were counted (see module)."""
        for queue, changes in self.queues.items():
            self._flush_queue(queue, changes)
        self._flush_totals()
        self._flush_agents()
        for call_key, state in self.calls.items():
            state["at"] = self.now_us
            state[PARTITION_FIELD] = self.partition
            self.store[call_key] = state
        for seen_key in self.seen:
            self.store[seen_key] = {"at": self.now_us, PARTITION_FIELD: self.partition}

    def _unfenced(self, record_key: str) -> tuple[bool, Record | None]:
        stored = self.store.get(record_key)
        fenced = stored is not None and stored.get(OFFSET_FIELD, -1) >= self.offset
        return not fenced, stored

    def _stamp(self, value: Record) -> Record:
        value[OFFSET_FIELD] = self.offset
        value[PARTITION_FIELD] = self.partition
        return value

    def _merge_acc(self, record_key: str, delta: KpiAccumulator) -> None:
        writable, stored = self._unfenced(record_key)
        if not writable:
            return
        acc = KpiAccumulator.from_json(stored["acc"]) if stored else KpiAccumulator()
        acc.merge(delta)
        self.store[record_key] = self._stamp({"acc": acc.to_json()})

    def _flush_queue(self, queue: str, changes: QueueChanges) -> None:
        for bucket, delta in changes.queue_deltas.items():
            self._merge_acc(key(records.BUCKET, queue, bucket), delta)
        for (agent_id, bucket), delta in changes.agent_deltas.items():
            self._merge_acc(key(records.AGENT_BUCKET, queue, agent_id, bucket), delta)
        for boundary, crossing in changes.boundaries.items():
            self._merge_boundary(key(records.BOUNDARY, queue, boundary), crossing)
        if changes.live_ops:
            self._update_live(key(records.LIVE, queue), changes.live_ops)

    def _merge_boundary(self, record_key: str, crossing: BoundaryWaiting) -> None:
        writable, stored = self._unfenced(record_key)
        if not writable:
            return
        merged = BoundaryWaiting.from_json(stored) if stored else BoundaryWaiting()
        merged.merge(crossing)
        self.store[record_key] = self._stamp(dict(merged.to_json()))

    def _update_live(self, record_key: str, ops: list[tuple[str, int | None]]) -> None:
        writable, stored = self._unfenced(record_key)
        if not writable:
            return
        calls: dict[str, int] = dict(stored["calls"]) if stored else {}
        for call_id, offered_us in ops:
            if offered_us is None:
                calls.pop(call_id, None)
            else:
                calls[call_id] = offered_us
        self.store[record_key] = self._stamp({"calls": calls})

    def _flush_totals(self) -> None:
        for routing, totals in self.totals.items():
            record_key = key(records.TOTALS, routing)
            writable, stored = self._unfenced(record_key)
            if not writable:
                continue
            acc = KpiAccumulator.from_json(stored["acc"]) if stored else KpiAccumulator()
            events = dict(stored["events"]) if stored else {}
            for kind, count in totals.events.items():
                events[kind] = events.get(kind, 0) + count
            queue = routing[2:] if routing.startswith("q:") else None
            if queue is not None and queue in self.queues:
                for delta in self.queues[queue].queue_deltas.values():
                    acc.merge(delta)
            duplicates = (stored["duplicates"] if stored else 0) + totals.duplicates
            self.store[record_key] = self._stamp(
                {"acc": acc.to_json(), "events": events, "duplicates": duplicates}
            )

    def _flush_agents(self) -> None:
        horizon_us = self.now_us - int(self.retention.buckets_s * US_PER_S)
        for agent_id, record in self.agents.items():
            if record.get(OFFSET_FIELD, -1) >= self.offset:
                continue
            prune_changes(record, horizon_us)
            self.store[key(records.AGENT, agent_id)] = self._stamp(record)


def _survey_targets(changes: QueueChanges, event: Event) -> list[KpiAccumulator]:
    targets = [changes.queue_bucket(event["ts_us"])]
    if isinstance(event.get("agent_id"), str):
        targets.append(changes.agent_bucket(event["agent_id"], event["ts_us"]))
    return targets


def _copy_call(stored: CallState) -> CallState:
    state = dict(stored)
    state["ids"] = list(stored["ids"])
    return state


def expire_partition(
    store: RecordStore, partition: int, offset: int, now_us: int, retention: Retention
) -> int:
    """Delete this partition's state past its retention; returns how many records went."""
    bucket_horizon = now_us - int(retention.buckets_s * US_PER_S)
    state_horizon = now_us - int(retention.call_state_s * US_PER_S)
    wait_horizon = now_us - int(retention.max_call_wait_s * US_PER_S)
    doomed: list[str] = []
    for record_key, value in list(store.items()):
        if not isinstance(value, dict) or value.get(PARTITION_FIELD) != partition:
            continue
        parts = records.split_key(record_key)
        family = parts[0]
        if family in (records.BUCKET, records.AGENT_BUCKET, records.BOUNDARY):
            if int(parts[-1]) < bucket_horizon:
                doomed.append(record_key)
        elif family == records.CALL:
            # A call still waiting keeps its state for the longest wait we believe in, too.
            horizon = state_horizon
            if not call_wait_finished(value):
                horizon -= int(retention.max_call_wait_s * US_PER_S)
            if value.get("at", 0) < horizon:
                doomed.append(record_key)
        elif family == records.SEEN:
            if value.get("at", 0) < state_horizon:
                doomed.append(record_key)
        elif family == records.LIVE:
            stale = {c for c, offered in value["calls"].items() if offered < wait_horizon}
            if stale:
                calls = {c: o for c, o in value["calls"].items() if c not in stale}
                store[record_key] = {
                    "calls": calls,
                    OFFSET_FIELD: value.get(OFFSET_FIELD, offset),
                    PARTITION_FIELD: partition,
                }
    for record_key in doomed:
        del store[record_key]
    return len(doomed)
