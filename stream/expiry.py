"""Expiry of the worker's state: what each record family keeps, and for how long."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from stream import records
from stream.kpi.agents import HISTORY_CHUNK_US
from stream.kpi.callstate import call_wait_finished
from stream.kpi.tickets import ticket_finished
from stream.kpi.timeutil import BUCKET_US, US_PER_S
from stream.records import OFFSET_FIELD, PARTITION_FIELD

Record = dict[str, Any]


class RecordStore(Protocol):
    def get(self, key: str) -> Record | None: ...

    def __setitem__(self, key: str, value: Record) -> None: ...

    def __delitem__(self, key: str) -> None: ...

    def keys(self) -> Iterable[str]: ...


@dataclass(frozen=True, slots=True)
class Retention:
    """How long the worker keeps each kind of state (seconds)."""

    # `at` up to 7 days back and a whole `today` before it: `compare=last_week` of `today`.
    # Memory grows with it; older minutes could be rolled up to 15 minutes (docs/SEMANTICS.md).
    buckets_s: float = 8 * 86400
    call_state_s: float = 2 * 3600  # after a call's last event: duplicates later than this count
    max_call_wait_s: float = 4 * 3600  # a call waiting longer lost its ending event
    ticket_state_s: float = 8 * 86400  # tickets stay open for days; resolved: as long as calls
    expiry_every_s: float = 60.0


def expire_partition(
    store: RecordStore, partition: int, offset: int, now_us: int, retention: Retention
) -> int:
    """Delete this partition's state past its retention; returns how many records went."""
    candidates = expiry_candidates(store, now_us, retention).get(partition, ())
    return expire_candidates(store, partition, offset, now_us, retention, candidates)


def expiry_candidates(
    store: RecordStore, now_us: int, retention: Retention
) -> dict[int, list[str]]:
    """Per partition, what expiry looks at now, from one whole walk of the store."""
    walk = _Walk(list(store.keys()), now_us, retention)
    walk.step(store, len(walk.keys))
    return walk.candidates()


class ExpiryRounds:
    """The worker's retention expiry, spread over its batches so it never stalls them.

    The local store holds every assigned partition's records, so one walk of it serves every
    partition. A walk looks at ``WALK_SLICE`` records per batch (tens of milliseconds: a walk
    of millions of records in one go stalled the event loop for seconds, long enough for the
    consumers' heartbeats to lapse), and a partition deletes at most ``DELETE_SLICE`` of its
    expired records per batch. A walk starts at most once per ``retention.expiry_every_s``, and
    later when walks are costly, so they take at most ``1 / WALK_SPACING`` of the worker's
    time: retention is a minimum, and a record deleted a little later costs only its memory."""

    WALK_SLICE = 20_000
    DELETE_SLICE = 5_000
    WALK_SPACING = 50

    def __init__(self, retention: Retention) -> None:
        self.retention = retention
        self._every_us = int(retention.expiry_every_s * US_PER_S)
        self._walk_every_us = self._every_us
        self._walk: _Walk | None = None
        self._walked_us: int | None = None  # when the last walk started
        self._due: dict[int, list[str]] = {}  # the last walk's candidates, per partition

    def maybe_expire(self, store: RecordStore, partition: int, offset: int, now_us: int) -> int:
        self._walk_on(store, now_us)
        due = self._due.get(partition)
        if not due:
            return 0
        candidates = due[-self.DELETE_SLICE :]
        del due[-self.DELETE_SLICE :]
        return expire_candidates(store, partition, offset, now_us, self.retention, candidates)

    def _walk_on(self, store: RecordStore, now_us: int) -> None:
        walk = self._walk
        if walk is None:
            if self._walked_us is not None and now_us - self._walked_us < self._walk_every_us:
                return
            walk = self._walk = _Walk(list(store.keys()), now_us, self.retention)
            self._walked_us = now_us
        started = time.perf_counter()
        done = walk.step(store, self.WALK_SLICE)
        walk.spent_s += time.perf_counter() - started
        if done:
            self._due = walk.candidates()
            self._walk = None
            spent_us = int(walk.spent_s * US_PER_S)
            self._walk_every_us = max(self._every_us, self.WALK_SPACING * spent_us)


class _Walk:
    """One pass over the store's keys as they were when it started, a slice at a time: a key
    deleted since is skipped, one added since waits for the next walk.

    Candidates are the records past their retention when the walk started and every live set
    (its stale waits are dropped in place). Of an agent's history chunks past the retention,
    the newest stays: it holds the change in force at the horizon (an agent logged in for days
    has no later one)."""

    def __init__(self, keys: list[str], now_us: int, retention: Retention) -> None:
        self.keys = keys
        self.position = 0
        self.spent_s = 0.0
        self._horizons = _Horizons(now_us, retention)
        self._found: dict[int, list[str]] = {}
        self._old_chunks: dict[str, list[tuple[int, str, int]]] = {}

    def step(self, store: RecordStore, count: int) -> bool:
        """Looks at the next ``count`` keys; True once every key was looked at."""
        end = min(self.position + count, len(self.keys))
        horizons, found = self._horizons, self._found
        for record_key in self.keys[self.position : end]:
            value = store.get(record_key)
            if value is None:
                continue
            partition = value.get(PARTITION_FIELD)
            if partition is None:
                continue
            family, _, rest = record_key.partition(records.SEP)
            if family == records.AGENT:
                agent_id, hourly, chunk = rest.rpartition(records.SEP)
                # A history written whole (before the hour chunks) is kept: it has no hour.
                if hourly and int(chunk) + HISTORY_CHUNK_US <= horizons.bucket:
                    chunks = self._old_chunks.setdefault(agent_id, [])
                    chunks.append((int(chunk), record_key, partition))
            elif family == records.LIVE or horizons.expired(family, rest, value):
                found.setdefault(partition, []).append(record_key)
        self.position = end
        return end == len(self.keys)

    def candidates(self) -> dict[int, list[str]]:
        found = self._found
        for chunks in self._old_chunks.values():
            chunks.sort()
            for _, record_key, partition in chunks[:-1]:
                found.setdefault(partition, []).append(record_key)
        return found


def expire_candidates(
    store: RecordStore,
    partition: int,
    offset: int,
    now_us: int,
    retention: Retention,
    candidates: Iterable[str],
) -> int:
    """Delete the candidates of ``partition`` still past their retention (a walk's candidate
    may have been written since); returns how many records went."""
    horizons = _Horizons(now_us, retention)
    deleted = 0
    for record_key in candidates:
        value = store.get(record_key)
        if value is None or value.get(PARTITION_FIELD) != partition:
            continue  # gone, or the partition was reassigned since the walk
        family, _, rest = record_key.partition(records.SEP)
        if family == records.LIVE:
            # Past calls waiting at old boundaries still need a lost call until its minutes go.
            _drop_stale_waits(store, record_key, value, partition, offset, horizons.bucket)
        elif family == records.AGENT or horizons.expired(family, rest, value):
            # An old chunk's hour never moves: the walk's choice stands.
            del store[record_key]
            deleted += 1
    return deleted


class _Horizons:
    def __init__(self, now_us: int, retention: Retention) -> None:
        self.retention = retention
        self.bucket = now_us - int(retention.buckets_s * US_PER_S)
        self.state = now_us - int(retention.call_state_s * US_PER_S)
        self.ticket = now_us - int(retention.ticket_state_s * US_PER_S)

    def expired(self, family: str, rest: str, value: Record) -> bool:
        """``rest``: the key after its family (``records.key``'s other parts)."""
        if family in records.BUCKETED_FAMILIES:
            # A minute goes once all of it is past the horizon: an event the validator still
            # accepts (ts >= now - retention) never lands in a minute about to be deleted.
            return int(rest.rpartition(records.SEP)[2]) + BUCKET_US <= self.bucket
        if family == records.CALL:
            # A call still waiting keeps its state for the longest wait we believe in, too.
            horizon = self.state
            if not call_wait_finished(value):
                horizon -= int(self.retention.max_call_wait_s * US_PER_S)
            return int(value.get("at", 0)) < horizon
        if family == records.TICKET:
            horizon = self.state if ticket_finished(value) else self.ticket
            return int(value.get("at", 0)) < horizon
        if family == records.SEEN:
            return int(value.get("at", 0)) < self.state
        return False


def _drop_stale_waits(
    store: RecordStore, record_key: str, value: Record, partition: int, offset: int, horizon: int
) -> None:
    stale = {c for c, offered in value["calls"].items() if offered < horizon}
    if stale:
        calls = {c: o for c, o in value["calls"].items() if c not in stale}
        store[record_key] = {
            "calls": calls,
            OFFSET_FIELD: value.get(OFFSET_FIELD, offset),
            PARTITION_FIELD: partition,
        }
