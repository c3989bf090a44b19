"""Stage two of the worker: apply one Kafka message's events to the state table.

Pure of Faust: it works on any mutable mapping of records (in the worker the table's local
store through ``stream.changelog.RunWrites``, which keeps the changelog records; a dict in unit
tests). Exactness without transactions rests on two rules:

1. Every record is written only while processing its own partition, once per message, with
   the message offset as a fence (``_o``). Replaying a message after a crash skips the
   records that already hold its effect.
2. Aggregates are written before the call and ticket states and dedupe marks that decide
   whether an event counts. The changelog keeps writes in order, so a crash leaves a prefix:
   either an event's dedupe mark is missing (it is re-applied, and fenced aggregates ignore
   it) or every aggregate it touched is already written.

``process_batch`` applies several messages of one partition, each exactly as ``process``
would (its own offset, its own fence checks), but holds the writes back and writes each
record once, with the offset of the last message that changed it: every aggregate of the
batch, then every state and dedupe mark. Both rules hold for the batch as a whole, so a crash
anywhere in its writes, replayed in any batches, gives the same records (a fence at offset
``o`` says the record holds every message up to ``o`` of its partition).

Stored objects are never mutated in place: the local store holds the very objects written, so
a value handed to the store must not change afterwards. A record an earlier message of the
same batch wrote is not in the store yet: later messages change that one in place (its top
level only; nested values may be shared with stored ones and are replaced), which gives the
value copying it would, without the copy.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from itertools import islice
from typing import Any

from stream import records
from stream.changes import CentreChanges, MessageOutcome, QueueChanges, RoutingTotals
from stream.expiry import ExpiryRounds, Record, RecordStore, Retention, expire_partition
from stream.kpi.accumulator import (
    KpiAccumulator,
    merge_json_into,
    merge_sparse_into,
    merged_json,
    merged_sparse_json,
)
from stream.kpi.agents import (
    HISTORY_CHUNK_US,
    AgentRecord,
    apply_agent_event,
    chunk_start_us,
    new_agent_record,
)
from stream.kpi.callstate import CallState, apply_call_event, new_call_state
from stream.kpi.config import CentreConfig
from stream.kpi.contacts import ContactFacts
from stream.kpi.tickets import TicketState, apply_ticket_event, new_ticket_state
from stream.kpi.waiting import BoundaryWaiting
from stream.records import OFFSET_FIELD, PARTITION_FIELD, SEP, key

__all__ = [
    "MessageOutcome",
    "MessageProcessor",
    "QueueChanges",
    "RecordStore",
    "Retention",
    "expire_partition",
]

Event = dict[str, Any]
# Agent history chunks whose event-id sets are kept between batches (a set of a few dozen ids,
# ~2 KB, each). A replay's batches hold several hours of event time at once (its input
# partitions are read at different paces), so a few thousand agents' working set is tens of
# thousands of chunks: with 20,000, cleared whenever full, every set was rebuilt again and again
# (4-6 % of a 10-million-event replay). Past the limit, the half stored longest ago goes. At
# most ~100 MB on memory://; none on RocksDB (process_batch).
AGENT_ID_SETS_KEPT = 50_000
# One routed message: its offset and its events.
Message = tuple[int, Iterable[Event]]


class MessageProcessor:
    def __init__(self, centre: CentreConfig, retention: Retention | None = None) -> None:
        self.centre = centre
        self.retention = retention or Retention()
        self._expiry = ExpiryRounds(self.retention)
        self._agent_ids: dict[str, tuple[Record, set[str]]] = {}

    def process(
        self,
        store: RecordStore,
        events: Iterable[Event],
        *,
        offset: int,
        partition: int,
        now_us: int,
    ) -> MessageOutcome:
        return self.process_batch(store, [(offset, events)], partition=partition, now_us=now_us)

    def process_batch(
        self,
        store: RecordStore,
        messages: Iterable[Message],
        *,
        partition: int,
        now_us: int,
    ) -> MessageOutcome:
        """Messages of ``partition`` in offset order; each record written once (see module)."""
        if getattr(store, "keeps_values", True):
            _keep_newest(self._agent_ids, AGENT_ID_SETS_KEPT)
            kept = self._agent_ids
        else:  # a kept set is trusted only for the very record read: never, from RocksDB
            kept = {}
        held = _HeldWrites(store, kept)
        outcome = MessageOutcome()
        last_offset: int | None = None
        for offset, events in messages:
            work = _MessageWork(held, self.centre, offset, partition, now_us)
            for event in events:
                work.apply(event)
            work.flush()
            outcome.absorb(work.outcome)
            last_offset = offset
        held.write_through()
        if last_offset is not None:
            self._expiry.maybe_expire(store, partition, last_offset, now_us)
        return outcome


class _HeldWrites:
    """A batch's writes, read back by its later messages, then written to the store once
    each: aggregates first, then states and dedupe marks (rule 2 for the whole batch).

    Callers say which of the two a record is (``state``/``set_state`` for the call, ticket
    and seen families, ``aggregate``/``set_aggregate`` for the rest): every key's family is
    fixed where it is built, so no key is looked at twice."""

    __slots__ = ("agent_ids", "aggregates", "states", "store")

    def __init__(self, store: RecordStore, agent_ids: dict[str, tuple[Record, set[str]]]) -> None:
        self.store = store
        self.aggregates: dict[str, Record] = {}
        self.states: dict[str, Record] = {}
        # Per agent history chunk, the record last written and its event ids, so the next
        # message with that chunk (this batch's or a later one's) does not rebuild the set from
        # the record. Used only while the store still holds that very record.
        self.agent_ids = agent_ids

    def aggregate(self, key: str) -> Record | None:
        value = self.aggregates.get(key)
        return value if value is not None else self.store.get(key)

    def set_aggregate(self, key: str, value: Record) -> None:
        self.aggregates[key] = value

    def state(self, key: str) -> Record | None:
        value = self.states.get(key)
        return value if value is not None else self.store.get(key)

    def set_state(self, key: str, value: Record) -> None:
        self.states[key] = value

    def write_through(self) -> None:
        store = self.store
        for record_key, value in self.aggregates.items():
            store[record_key] = value
        for record_key, value in self.states.items():
            store[record_key] = value


class _MessageWork:
    """The state one message reads and writes, loaded once and written once."""

    def __init__(
        self,
        store: _HeldWrites,
        centre: CentreConfig,
        offset: int,
        partition: int,
        now_us: int,
    ) -> None:
        self.store, self.centre = store, centre
        self.offset, self.partition, self.now_us = offset, partition, now_us
        self.queues: dict[str, QueueChanges] = {}
        self.centre_changes = CentreChanges()
        self.calls: dict[str, CallState] = {}
        self.tickets: dict[str, TicketState] = {}
        self.agents: dict[str, AgentRecord] = {}  # by history chunk key
        self.agent_ids: dict[str, set[str]] = {}  # event ids in each chunk
        self.seen: dict[str, bool] = {}
        self.totals: dict[str, RoutingTotals] = {}
        self.outcome = MessageOutcome()

    # -- applying events -------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        kind: str = event["type"]
        queue = event.get("queue")
        # records.routing_key(), its usual case inlined
        routing_key = f"q:{queue}" if isinstance(queue, str) else records.routing_key(event)
        routing = self.totals.get(routing_key)
        if routing is None:
            routing = self.totals[routing_key] = RoutingTotals()
        routing.events[kind] = routing.events.get(kind, 0) + 1
        self.outcome.processed += 1
        if kind.startswith("call."):
            counted = self._apply_call(event)
        elif kind.startswith("ticket."):
            counted = self._apply_ticket(event)
        else:
            counted = self._apply_other(event)
        if not counted:
            routing.duplicates += 1
            self.outcome.duplicates += 1

    def _apply_call(self, event: Event) -> bool:
        queue: str = event["queue"]
        call_key = f"{records.CALL}{SEP}{queue}{SEP}{event['call_id']}"  # key(), inlined
        state = self.calls.get(call_key)
        if state is None:
            stored = self.store.state(call_key)
            state = _copy_state(stored) if stored else new_call_state(event["call_id"])
            self.calls[call_key] = state
        counted = apply_call_event(state, event, self._queue(queue), self.centre.for_queue(queue))
        if counted:
            self.outcome.changed_queues.add(queue)
        return counted

    def _apply_ticket(self, event: Event) -> bool:
        queue: str = event["queue"]
        ticket_key = f"{records.TICKET}{SEP}{queue}{SEP}{event['ticket_id']}"  # key(), inlined
        state = self.tickets.get(ticket_key)
        if state is None:
            stored = self.store.state(ticket_key)
            state = _copy_state(stored) if stored else new_ticket_state(event["ticket_id"])
            self.tickets[ticket_key] = state
        counted = apply_ticket_event(state, event, self._queue(queue))
        if counted:
            self.outcome.changed_queues.add(queue)
        return counted

    def _apply_other(self, event: Event) -> bool:
        kind = event["type"]
        if kind == "agent.state":
            return self._apply_agent(event)
        seen_key = f"{records.SEEN}{SEP}{event['event_id']}"  # key(), inlined
        if seen_key in self.seen or self.store.state(seen_key) is not None:
            return False
        self.seen[seen_key] = True
        if kind == "survey.response":
            self._apply_survey(event)
        elif kind == "kb.article_viewed":
            read_s = event.get("read_s")
            for acc in self._targets_of(event):
                acc.add_kb_read(None if read_s is None else float(read_s))
        elif kind in ("customer.acquired", "customer.churned"):
            # Customers are the centre's, whatever queue an event names (docs/SEMANTICS.md).
            field = "customers_acquired" if kind == "customer.acquired" else "customers_churned"
            for acc in self._centre_targets(event["ts_us"]):
                setattr(acc, field, getattr(acc, field) + 1)
        return True

    def _apply_agent(self, event: Event) -> bool:
        """An agent's history chunk holds the id of every change it keeps, so the history
        dedupes its own events: no seen mark, one write less each. A resend lands in its
        original's hour, or (re-stamped) in a neighbouring one: ids are looked up in the hour
        of the event and the hours either side, so a resend within an hour of its original's
        time is known for the whole retention."""
        agent_id, event_id = event["agent_id"], event["event_id"]
        chunk_us = chunk_start_us(event["ts_us"])
        prefix = f"{records.AGENT}{SEP}{agent_id}{SEP}"  # key(), inlined
        for hour_us in (chunk_us, chunk_us - HISTORY_CHUNK_US, chunk_us + HISTORY_CHUNK_US):
            if event_id in self._chunk_ids(f"{prefix}{hour_us}"):
                return False
        chunk_key = f"{prefix}{chunk_us}"
        record = self._agent_chunk(chunk_key, agent_id)
        self.agent_ids[chunk_key].add(event_id)
        return apply_agent_event(record, event)

    def _apply_survey(self, event: Event) -> None:
        changes = self._queue(event["queue"])
        targets = [changes.queue_bucket(event["ts_us"])]
        if isinstance(event.get("agent_id"), str):
            targets.append(changes.agent_bucket(event["agent_id"], event["ts_us"]))
        survey = event["survey"]
        for acc in targets:
            if survey == "servqual":
                acc.add_servqual(
                    event["dimension"], float(event["perception"]), float(event["expectation"])
                )
            elif "score" in event:
                acc.add_survey(survey, float(event["score"]), event.get("scale_max"))
        self.outcome.changed_queues.add(event["queue"])

    def _targets_of(self, event: Event) -> list[KpiAccumulator]:
        """The queue's minute when the event names a queue, else the centre's."""
        queue = event.get("queue")
        if isinstance(queue, str):
            self.outcome.changed_queues.add(queue)
            return [self._queue(queue).queue_bucket(event["ts_us"])]
        return self._centre_targets(event["ts_us"])

    def _centre_targets(self, ts_us: int) -> list[KpiAccumulator]:
        return [self.centre_changes.bucket(ts_us), self.centre_changes.all_time]

    def _queue(self, queue: str) -> QueueChanges:
        changes = self.queues.get(queue)
        if changes is None:
            changes = self.queues[queue] = QueueChanges()
        return changes

    def _agent_chunk(self, chunk_key: str, agent_id: str) -> AgentRecord:
        record = self.agents.get(chunk_key)
        if record is None:
            held = self._held(chunk_key)
            if held is not None:
                # An earlier message of this batch wrote it: changed in place (the copy below
                # would have the same keys in the same order), not copied whole again.
                stored: AgentRecord | None = held
                record = held
            else:
                stored = self.store.aggregate(chunk_key)
                record = new_agent_record(agent_id)
                if stored is not None:
                    record["changes"] = list(stored["changes"])
                    record[OFFSET_FIELD] = stored.get(OFFSET_FIELD, -1)
            self.agents[chunk_key] = record
            # Taken out of the batch's cache: it goes back only with the record written.
            cached = self.store.agent_ids.pop(chunk_key, None)
            if stored is not None and cached is not None and cached[0] is stored:
                self.agent_ids[chunk_key] = cached[1]
            else:
                self.agent_ids[chunk_key] = {change[1] for change in record["changes"]}
        return record

    def _chunk_ids(self, chunk_key: str) -> Collection[str]:
        """The event ids of a history chunk, read only: the set this message builds up if it
        changes that chunk, else the kept set of the record the store holds."""
        ids = self.agent_ids.get(chunk_key)
        if ids is not None:
            return ids
        stored = self.store.aggregate(chunk_key)
        if stored is None:
            return ()
        cached = self.store.agent_ids.get(chunk_key)
        if cached is not None and cached[0] is stored:
            return cached[1]
        ids = {change[1] for change in stored["changes"]}
        self.store.agent_ids[chunk_key] = (stored, ids)
        return ids

    # -- writing ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Aggregates first, then the states that say which events were counted (see module)."""
        for queue, changes in self.queues.items():
            self._flush_queue(queue, changes)
        self._flush_centre()
        self._flush_totals()
        self._flush_agents()
        for state_key, state in (*self.calls.items(), *self.tickets.items()):
            state["at"] = self.now_us
            state[PARTITION_FIELD] = self.partition
            self.store.set_state(state_key, state)
        for seen_key in self.seen:
            self.store.set_state(seen_key, {"at": self.now_us, PARTITION_FIELD: self.partition})

    def _unfenced(self, record_key: str) -> tuple[bool, Record | None]:
        stored = self.store.aggregate(record_key)
        fenced = stored is not None and stored.get(OFFSET_FIELD, -1) >= self.offset
        return not fenced, stored

    def _stamp(self, value: Record) -> Record:
        value[OFFSET_FIELD] = self.offset
        value[PARTITION_FIELD] = self.partition
        return value

    def _held(self, record_key: str) -> Record | None:
        """The record if an earlier message of this batch wrote it: not in the store yet and
        held by nothing else, so this message may change it in place (same keys, same order:
        the value the copying path would write)."""
        held = self.store.aggregates.get(record_key)
        return held if held is not None and held[OFFSET_FIELD] < self.offset else None

    def _merge_acc(self, record_key: str, delta: KpiAccumulator) -> None:
        held = self._held(record_key)
        if held is not None and merge_sparse_into(held["acc"], delta):
            held[OFFSET_FIELD] = self.offset
            return
        writable, stored = self._unfenced(record_key)
        if not writable:
            return
        acc = merged_sparse_json(stored["acc"] if stored else None, delta)
        self.store.set_aggregate(record_key, self._stamp({"acc": acc}))

    def _flush_queue(self, queue: str, changes: QueueChanges) -> None:
        # Keys as key() builds them (an int part formats the same), inlined: one per write.
        for bucket, delta in changes.queue_deltas.items():
            self._merge_acc(f"{records.BUCKET}{SEP}{queue}{SEP}{bucket}", delta)
        for (agent_id, bucket), delta in changes.agent_deltas.items():
            self._merge_acc(
                f"{records.AGENT_BUCKET}{SEP}{queue}{SEP}{agent_id}{SEP}{bucket}", delta
            )
        for bucket, facts in changes.facts.items():
            self._merge_facts(f"{records.CONTACTS}{SEP}{queue}{SEP}{bucket}", facts)
        for boundary, crossing in changes.boundaries.items():
            self._merge_boundary(key(records.BOUNDARY, queue, boundary), crossing)
        if changes.live_ops:
            self._update_live(key(records.LIVE, queue), changes.live_ops)

    def _flush_centre(self) -> None:
        if not self.centre_changes.deltas:
            return
        for bucket, delta in self.centre_changes.deltas.items():
            self._merge_acc(key(records.CENTRE_BUCKET, self.partition, bucket), delta)
        self._merge_acc(key(records.CENTRE_TOTALS, self.partition), self.centre_changes.all_time)

    def _merge_facts(self, record_key: str, facts: ContactFacts) -> None:
        held = self._held(record_key)
        if held is not None:
            facts.merge_into_json(held)
            held[OFFSET_FIELD] = self.offset
            return
        writable, stored = self._unfenced(record_key)
        if not writable:
            return
        merged = ContactFacts.from_json(stored) if stored else ContactFacts()
        merged.merge(facts)
        self.store.set_aggregate(record_key, self._stamp(merged.to_json()))

    def _merge_boundary(self, record_key: str, crossing: BoundaryWaiting) -> None:
        writable, stored = self._unfenced(record_key)
        if not writable:
            return
        merged = BoundaryWaiting.from_json(stored) if stored else BoundaryWaiting()
        merged.merge(crossing)
        self.store.set_aggregate(record_key, self._stamp(dict(merged.to_json())))

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
        self.store.set_aggregate(record_key, self._stamp({"calls": calls}))

    def _flush_totals(self) -> None:
        for routing, totals in self.totals.items():
            record_key = f"{records.TOTALS}{SEP}{routing}"  # key(), inlined
            held = self._held(record_key)
            if held is not None:
                self._add_totals(held, routing, totals)
                continue
            writable, stored = self._unfenced(record_key)
            if not writable:
                continue
            value: Record = {}
            if routing.startswith("q:"):
                # A queue's all-time figures. Other routing keys (agents, customers, centre)
                # have none, and the API reads none: their totals are counters only.
                changes = self.queues.get(routing[2:])
                deltas = changes.queue_deltas.values() if changes is not None else ()
                value["acc"] = merged_json(stored["acc"] if stored else None, deltas)
            events = dict(stored["events"]) if stored else {}
            for kind, count in totals.events.items():
                events[kind] = events.get(kind, 0) + count
            value["events"] = events
            value["duplicates"] = (stored["duplicates"] if stored else 0) + totals.duplicates
            self.store.set_aggregate(record_key, self._stamp(value))

    def _add_totals(self, held: Record, routing: str, totals: RoutingTotals) -> None:
        """``_flush_totals`` on a record this batch holds, in place."""
        if routing.startswith("q:"):
            changes = self.queues.get(routing[2:])
            if changes is not None:
                merge_json_into(held["acc"], changes.queue_deltas.values())
        events: dict[str, int] = held["events"]
        for kind, count in totals.events.items():
            events[kind] = events.get(kind, 0) + count
        held["duplicates"] += totals.duplicates
        held[OFFSET_FIELD] = self.offset

    def _flush_agents(self) -> None:
        for chunk_key, record in self.agents.items():
            if record.get(OFFSET_FIELD, -1) >= self.offset:
                continue
            self.store.set_aggregate(chunk_key, self._stamp(record))
            self.store.agent_ids[chunk_key] = (record, self.agent_ids[chunk_key])


def _keep_newest(kept: dict[str, Any], limit: int) -> None:
    """Past ``limit`` entries, the older half of ``kept`` by when each was stored (a chunk's
    set is stored again, at the end, each time its chunk is written)."""
    if len(kept) > limit:
        for key in list(islice(kept, len(kept) - limit // 2)):
            del kept[key]


def _copy_state(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored call or ticket state, safe to change: the state machines replace its
    sequences (tuples) rather than append to them, so a shallow copy is enough."""
    return dict(stored)
