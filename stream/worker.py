"""The worker: stage one (``stream.ingress``) and the Faust app that runs stage two.

Stage one reads the input topic, whatever its keys, validates every event, sends the invalid
ones to the dead-letter topic and forwards the valid ones, batched, each to the partition of
its routing key (``stream.records.routing_key``). It is a plain consumer started as a service
of the app (a Faust agent costs too much per input message). Stage two (``aggregate``) then
finds every event that touches a record on the partition that owns the record, so dedupe and
call state are right with any number of workers, whatever key the producers chose.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any, cast

import faust
import orjson
from faust.streams import _current_event
from faust.types import EventT
from mode import BaseSignalT

from callpulse.heap import BatchCollector
from callpulse.kafka import faust_credentials, producer_acks
from callpulse.pseudonym import pseudonymiser_for
from callpulse.settings import Settings
from stream import diagnose
from stream.changelog import ChangelogWriter, RunWrites, local_store
from stream.fetchwait import FetchWaitApp
from stream.ingress import Ingress
from stream.kpi.config import CentreConfig
from stream.kpi.timeutil import US_PER_S
from stream.processor import MessageProcessor, Retention
from stream.routed import RoutedPositions
from stream.validation import EventValidator

log = logging.getLogger(__name__)

# Routed messages per stage-two batch (each holds up to FORWARD_CHUNK events).
AGGREGATE_BATCH_MESSAGES = 200
# A partition's messages go to the processor in runs of at most this much JSON (about 10,000
# events): each record is written once per run, so bigger runs write less per event; a run's
# changelog records (kilobytes each) wait in memory until the next run was processed.
AGGREGATE_RUN_BYTES = 4_000_000
# How often stage two checks that no fetched message went unprocessed (stream.routed) and
# commits what it processed since the last batch's commit.
AUDIT_EVERY_S = 1.0
# The collector's thresholds in the worker (CPython's: 700, 10, 10). A batch allocates tens of
# thousands of short-lived containers (events, deltas, records); at 700 a young collection runs
# every few events and promotes the batch's live ones to be scanned again and again, about half
# of stage two's CPU (bench/inprocess.py). Most of them now die before a collection sees them.
GC_THRESHOLDS = (50_000, 20, 100)


# RocksDB (one database per partition) sized for records of a few hundred bytes: Faust's
# defaults (3 x 64 MB memtables and a 2 GB block cache per database) let a worker's RSS grow
# far past what its state needs. Reads come from the memtable or the OS page cache anyway.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 8 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "target_file_size_base": 16 * 1024 * 1024,
    "block_cache_size": 16 * 1024 * 1024,
    "block_cache_compressed_size": 4 * 1024 * 1024,
}


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


def freeze_long_lived() -> None:
    """Everything alive now (modules, Faust, the recovered table) out of the collector's
    scans for good: the table's records are freed by reference counting, never in cycles."""
    gc.collect()
    gc.freeze()


def now_us() -> int:
    return int(time.time() * US_PER_S)


def create_worker_app(settings: Settings, centre: CentreConfig) -> faust.App:
    app = FetchWaitApp(
        settings.app_id,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=faust_credentials(settings),
        store=settings.store,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_s,
        producer_acks=producer_acks(settings),
        consumer_auto_offset_reset="earliest",
        # The state table's changelog is JSON: the API reads it as its read model.
        key_serializer="json",
        value_serializer="json",
        web_enabled=False,
    )
    # Declared by Faust (internal) with ``partitions`` before stage one starts forwarding to it.
    routed = app.topic(
        settings.routed_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
        internal=True,
        # Faust neither acks nor commits it: stage two commits what it processed, and only
        # that (stream.continuity).
        acks=False,
    )
    positions = RoutedPositions(app, settings.routed_topic)
    state = app.Table(
        settings.state_table,
        default=None,
        partitions=settings.partitions,
        options=ROCKSDB_OPTIONS if settings.store.startswith("rocksdb:") else None,
    )
    processor = MessageProcessor(
        centre,
        Retention(
            buckets_s=settings.retention_s,
            call_state_s=settings.call_state_ttl_s,
            max_call_wait_s=settings.max_call_wait_s,
        ),
    )

    validator = EventValidator(max_past_s=settings.retention_s, max_future_s=settings.max_future_s)
    # Extra services start once the tables have recovered, so the routed topic exists by then.
    # Faust takes an instance as well as a class (App._prepare_subservice); its hint says class.
    ingress = Ingress(settings, validator, pseudonymiser_for(settings))
    app.service(ingress)  # type: ignore[arg-type]
    # Stage two's changelog producer (table writes bypass Faust's, see stream.changelog).
    changelog = ChangelogWriter(settings, state)
    app.service(changelog)  # type: ignore[arg-type]

    collector = BatchCollector() if settings.worker_gc_freeze else None
    if collector is not None:
        app.rebalance_start_hooks.append(collector.thaw)

    async def consumer_state_on_sigusr2() -> None:
        diagnose.install(app, lambda: ingress.consumer)

    app.task(consumer_state_on_sigusr2)  # once the worker runs: the handler needs its loop

    async def audit_routed_positions() -> None:
        while True:
            await asyncio.sleep(AUDIT_EVERY_S)
            async with positions.batch_lock:
                try:
                    await positions.audit()
                except Exception:  # e.g. the consumer not started yet: the next one will
                    log.debug("routed positions not audited", exc_info=True)
            positions.commit_if_due()  # the last batches' offsets, once stage two is idle

    app.task(audit_routed_positions)

    @app.on_partitions_revoked.connect
    async def settle_changelog(
        sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any
    ) -> None:
        # The batch under way finishes first, then everything sent is acknowledged and its
        # offsets committed: a partition's next owner recovers a changelog with nothing of
        # ours still to land after its own writes, and starts after what we processed.
        async with positions.batch_lock:
            await changelog.settle()
            await positions.commit()
            positions.continuity.forget()

    @app.on_rebalance_complete.connect
    async def freeze_after_recovery(
        sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any
    ) -> None:
        # The table's recovered records are the bulk of the heap and live on.
        freeze_long_lived()

    @app.agent(routed, name="aggregate")
    async def aggregate(stream: faust.StreamT[bytes]) -> None:
        # Several messages per batch: each record is written once per run, not per message
        # (MessageProcessor.process_batch keeps the offset fence per message).
        # take_events lives on the concrete Stream; StreamT (what agents get) omits it.
        batches = cast(faust.Stream[bytes], stream).take_events(
            AGGREGATE_BATCH_MESSAGES, within=settings.ingest_batch_within_s
        )
        async for batch in batches:
            async with positions.batch_lock:
                await process(batch)
                positions.batch_done()
            positions.commit_if_due()
            if collector is not None:
                collector.after_batch()

    async def process(batch: Sequence[EventT[bytes]]) -> None:
        if not positions.begin_batch():
            return
        in_flight = InFlightRuns(AGGREGATE_RUN_BYTES)
        last_offsets: dict[int, int] = {}
        for partition, received in _by_partition(batch).items():
            events = await positions.accepted(partition, received)
            if events:
                last_offsets[partition] = events[-1].message.offset
            for run in _runs_within(events, AGGREGATE_RUN_BYTES):
                # A RocksDB store picks the partition's database by the current event,
                # which Faust leaves unset in a take_events batch (faust-streaming#497).
                _current_event.set(weakref.ref(run[-1]))
                writes = RunWrites(local_store(state), partition)
                # Decoded one message at a time, as the processor reaches it.
                messages = ((e.message.offset, orjson.loads(e.value)) for e in run)
                processor.process_batch(writes, messages, partition=partition, now_us=now_us())
                sent = changelog.send(partition, writes.records)
                await in_flight.add(sent, sum(len(e.value) for e in run))
        # Processed means every changelog record of it acknowledged (stream.changelog).
        await changelog.settle()
        for partition, last_offset in last_offsets.items():
            positions.processed(partition, last_offset)

    return app


class InFlightRuns:
    """Runs whose changelog records are on their way, bounded by the input bytes they came
    from: past ``max_bytes``, the oldest are awaited before the next run is processed.

    Waiting for every run's acknowledgement before the next (as this did) put one broker
    round trip per partition in every batch: at a few events per partition and batch, most
    of stage two's latency. Now a small batch's partitions all send at once and ``settle``
    waits for them together; a replay's big runs still keep about one run in memory besides
    the one being processed. Order within a partition is the writer's (``ChangelogWriter``).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._runs: deque[tuple[asyncio.Future[None] | None, int]] = deque()
        self._bytes = 0

    async def add(self, sent: asyncio.Future[None] | None, input_bytes: int) -> None:
        self._runs.append((sent, input_bytes))
        self._bytes += input_bytes
        while self._bytes > self.max_bytes and len(self._runs) > 1:
            oldest, size = self._runs.popleft()
            self._bytes -= size
            if oldest is not None:
                await oldest


def _runs_within(events: list[EventT[bytes]], max_bytes: int) -> Iterator[list[EventT[bytes]]]:
    """Consecutive runs of ``events`` of at most ``max_bytes`` of values (at least one each)."""
    run: list[EventT[bytes]] = []
    size = 0
    for event in events:
        if run and size + len(event.value) > max_bytes:
            yield run
            run, size = [], 0
        run.append(event)
        size += len(event.value)
    if run:
        yield run


def _by_partition(batch: Sequence[EventT[bytes]]) -> dict[int, list[EventT[bytes]]]:
    """A take_events batch by source partition, each in offset order."""
    grouped: dict[int, list[EventT[bytes]]] = {}
    for event in batch:
        grouped.setdefault(event.message.partition, []).append(event)
    return grouped


def run_worker(settings: Settings, centre: CentreConfig) -> None:
    """Run until SIGINT/SIGTERM (Faust's own worker loop)."""
    from faust.worker import Worker

    tune_gc()
    app = create_worker_app(settings, centre)
    Worker(app, loglevel=settings.log_level).execute_from_commandline()
