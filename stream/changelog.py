"""Stage two's table writes without Faust's per-record changelog path.

Faust's ``table[key] = value`` sends each record through ``send_soon``, its producer buffer
and aiokafka's ``send`` (a future and a task step per record, ~90 µs): half of stage two.
Here ``RunWrites`` stands in for the table in ``MessageProcessor.process_batch``: it reads and
writes the table's local store (``table.data``) directly and keeps each write's changelog
record, serialised at once, in write order. ``ChangelogWriter`` then sends a run's records to
the state table's changelog topic, to the run's partition, as whole record batches of one
aiokafka producer of its own.

Why it is still exact. Faust commits a routed-topic offset once the event is acked, and a
``take_events`` batch is acked only when the agent asks for the next batch. The agent awaits
``ChangelogWriter.settle`` (every run's records acknowledged, ``acks`` as configured) before
that, so no committed offset ever has a changelog record that is not durable: a crash replays
from the last commit, and the offset fences (``stream.processor``, rule 1) make the replay
exact. Rule 2 (aggregates before states and dedupe marks) needs the changelog in write
order per partition: the records go in write order, one batch at a time per partition, each
sent only after the one before it was acknowledged. A failed send is retried (the same batch,
then the rest) and nothing after it is sent meanwhile, so the changelog always holds a prefix
of the writes, possibly with a batch repeated (the same values again: the same latest value
per key). Faust's recovery and standbys read the same topic and the same bytes, so they keep
working.

The bytes are Faust's: its ``json`` codec (``faust.utils.json.dumps``: orjson with Faust's
options) for keys and values, and a tombstone (no value) for a delete, as ``del table[key]``
writes (tests/unit/test_changelog.py compares them with Faust's own serialiser).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, MutableMapping
from typing import Any, cast

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder
from faust.stores.memory import Store as MemoryStore
from faust.types import TP, StoreT, TableT
from faust.utils.json import on_default
from mode import Service

from callpulse.kafka import client_kwargs, producer_acks
from callpulse.settings import Settings
from stream.expiry import Record

log = logging.getLogger(__name__)

# Faust's producer reads this (bytes per record batch); callpulse.broker sets it to 1 on the
# embedded broker so that every batch holds one record (EXACT_END_OFFSETS_ENV). Honoured here
# the same way; without it, batches of up to CHANGELOG_BATCH_BYTES (under the broker's 1 MiB
# message limit) cost one produce request per run and partition instead of one per 16 KB.
MAX_BATCH_SIZE_ENV = "PRODUCER_MAX_BATCH_SIZE"
CHANGELOG_BATCH_BYTES = 900_000
# Faust's producer_max_request_size: no record Faust would send is refused here either.
MAX_REQUEST_BYTES = 1_000_000
RETRY_AFTER_S = 1.0

# One changelog record: key and value bytes (value None: a tombstone).
ChangelogRecord = tuple[bytes, bytes | None]


# What faust.utils.json.dumps passes orjson (Faust's ``json`` codec with orjson installed).
_FAUST_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z


def encode(obj: Any) -> bytes:
    """Faust's ``json`` codec: the bytes ``table[key] = value`` puts in the changelog.

    Copied out of orjson's result: orjson starts every output in a 1 KB buffer from the C
    allocator and shrinks it, and a run keeps thousands of them alive until they are sent;
    glibc then hands the freed heap back to the system and faults it in again for the next
    run, which made encoding cost several times orjson's own work (bench/inprocess.py). The
    copy is exact-sized, and small ones come from Python's own allocator."""
    return memoryview(orjson.dumps(obj, default=on_default, option=_FAUST_JSON_OPTIONS)).tobytes()


def local_store(table: TableT[Any, Any]) -> MutableMapping[Any, Any]:
    """The table's local records: the dict inside Faust's memory store (its mapping methods
    only forward to it), else the store itself (RocksDB)."""
    data = table.data
    if isinstance(data, MemoryStore):
        inner: MutableMapping[Any, Any] = data.data
        return inner
    return data


class RunWrites:
    """A ``RecordStore`` for one run of one partition: reads and writes ``data`` (the table's
    local store) and keeps every write's changelog record, in write order, in ``records``."""

    __slots__ = ("data", "keeps_values", "partition", "records")

    def __init__(self, data: MutableMapping[Any, Any], partition: int) -> None:
        self.data = data
        self.partition = partition
        self.records: list[ChangelogRecord] = []
        # Whether a read returns the very object written (the memory store's dict), not a
        # copy decoded again (RocksDB): what the processor may remember by identity.
        self.keeps_values = isinstance(data, dict)

    def get(self, key: str) -> Record | None:
        value: Record | None = self.data.get(key)
        return value

    def __setitem__(self, key: str, value: Record) -> None:
        self.data[key] = value
        self.records.append((encode(key), encode(value)))

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self.records.append((encode(key), None))

    def keys(self) -> Iterable[str]:
        keys: Iterable[str] = self.data.keys()
        return keys


def max_batch_bytes(environ: MutableMapping[str, str] | None = None) -> int:
    raw = (os.environ if environ is None else environ).get(MAX_BATCH_SIZE_ENV)
    return int(raw) if raw else CHANGELOG_BATCH_BYTES


class ChangelogWriter(Service):
    """Sends runs' changelog records with a producer of its own, in order per partition.

    ``send`` starts a run's sends (after that partition's earlier runs); ``settle`` waits
    until every run sent so far is acknowledged."""

    def __init__(self, settings: Settings, table: TableT[Any, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.table = table
        self.batch_bytes = max_batch_bytes()
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()
        # Per partition, the task sending its latest run (each awaits the one before).
        self._tails: dict[int, asyncio.Future[None]] = {}

    async def on_stop(self) -> None:
        await self.settle()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def send(self, partition: int, records: list[ChangelogRecord]) -> asyncio.Future[None] | None:
        """Starts sending ``records`` after the partition's earlier ones; the task doing it
        (the partition's last one when there are none)."""
        if not records:
            return self._tails.get(partition)
        previous = self._tails.get(partition)
        task = asyncio.ensure_future(self._send_after(previous, partition, records))
        self._tails[partition] = task
        return task

    async def settle(self) -> None:
        """Returns once every record sent so far is acknowledged by the broker."""
        tails = list(self._tails.values())
        if tails:
            await asyncio.gather(*tails)
            for partition, task in list(self._tails.items()):
                if task.done():
                    del self._tails[partition]

    async def _send_after(
        self, previous: asyncio.Future[None] | None, partition: int, records: list[ChangelogRecord]
    ) -> None:
        if previous is not None:
            await previous
        producer = await self._started_producer()
        tp = TP(self.table.changelog_topic.get_topic_name(), partition)
        builder = producer.create_batch()
        group: list[ChangelogRecord] = []
        for record in records:
            if builder.append(key=record[0], value=record[1], timestamp=None) is None:
                await self._send_until_acked(tp, builder, group)
                builder, group = producer.create_batch(), []
                builder.append(key=record[0], value=record[1], timestamp=None)
            group.append(record)
        if group:
            await self._send_until_acked(tp, builder, group)

    async def _send_until_acked(
        self, tp: TP, builder: BatchBuilder | None, records: list[ChangelogRecord]
    ) -> None:
        """Sends one record batch and waits for its acknowledgement, retrying until it has one:
        nothing after it is sent meanwhile (the changelog keeps a prefix of the writes)."""
        while True:
            try:
                producer = await self._started_producer()
                if builder is None:  # a retry: a built batch cannot be sent twice
                    builder = producer.create_batch()
                    for record_key, value in records:
                        builder.append(key=record_key, value=value, timestamp=None)
                ack = await producer.send_batch(builder, tp.topic, partition=tp.partition)
                metadata = await ack
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "changelog batch of %d records to %s failed; retrying", len(records), tp
                )
                builder = None
                await asyncio.sleep(RETRY_AFTER_S)
        # What Faust's send callback does for RocksDB (a no-op in memory): recovery after a
        # restart starts past what the store already holds.
        store = cast(StoreT[Any, Any], self.table.data)
        store.set_persisted_offset(tp, metadata.offset + len(records) - 1)

    async def _started_producer(self) -> AIOKafkaProducer:
        """The producer, started on first use (retried until the broker answers)."""
        async with self._starting:
            while self._producer is None:
                producer = AIOKafkaProducer(
                    **client_kwargs(self.settings),
                    acks=producer_acks(self.settings),
                    max_batch_size=self.batch_bytes,
                    max_request_size=MAX_REQUEST_BYTES,
                )
                try:
                    await producer.start()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("changelog producer did not start; retrying")
                    await producer.stop()
                    await asyncio.sleep(RETRY_AFTER_S)
                    continue
                self._producer = producer
            return self._producer
