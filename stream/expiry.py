"""Expiry of the worker's state: what each record family keeps, and for how long."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from stream import records
from stream.kpi.callstate import call_wait_finished
from stream.kpi.tickets import ticket_finished
from stream.kpi.timeutil import BUCKET_US, US_PER_S
from stream.records import OFFSET_FIELD, PARTITION_FIELD

Record = dict[str, Any]


class RecordStore(Protocol):
    def get(self, key: str) -> Record | None: ...

    def __setitem__(self, key: str, value: Record) -> None: ...

    def __delitem__(self, key: str) -> None: ...

    def items(self) -> Iterable[tuple[str, Record]]: ...


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
    horizons = _Horizons(now_us, retention)
    doomed: list[str] = []
    for record_key, value in _records_of(store, partition):
        family, _, rest = record_key.partition(records.SEP)
        if family == records.LIVE:
            # Past calls waiting at old boundaries still need a lost call until its minutes go.
            _drop_stale_waits(store, record_key, value, partition, offset, horizons.bucket)
        elif horizons.expired(family, rest, value):
            doomed.append(record_key)
    for record_key in doomed:
        del store[record_key]
    return len(doomed)


def _records_of(store: RecordStore, partition: int) -> list[tuple[str, Record]]:
    """The partition's records. The local store holds every partition's (the worker's whole
    table in memory), so this visits all of them: kept to one comprehension, without the
    tuple of every item that ``list(store.items())`` would build first."""
    return [
        (record_key, value)
        for record_key, value in store.items()
        if isinstance(value, dict) and value.get(PARTITION_FIELD) == partition
    ]


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
