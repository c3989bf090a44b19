"""Stage one: read the input topic, validate, forward by partition, commit once acknowledged.

A plain aiokafka consumer, not a Faust agent: producers write one event per message, and
Faust's per-message machinery (~200 µs) would cap this stage at a few thousand events/s.
Here a poll returns up to ``ingest_batch_max`` messages that are decoded, validated and
pseudonymised together (``validate_batch``), forwarded as JSON arrays, one run per partition of
the routed topic, and their offsets committed (group ``Settings.validate_group``) only after
every send of the batch was acknowledged.

Each event goes to the partition its routing key hashes to under the producer's default
partitioner (``KeyPartitions``): exactly where a message keyed by that routing key would go, so
every record an event touches stays on one partition (co-partitioned with the state table).
Packing by partition rather than by key makes a poll of thousands of one-event messages a
handful of routed messages instead of one per queue and agent, and stage two pays its
per-message cost (~200 µs in Faust) that many times less. Stage two reads each event's routing
key from the event itself; within a partition every key's events keep their arrival order,
which dedupe and the call state machine need. Routed messages carry no key.

One batch stays in flight (``InOrderCommits``) so that waiting for the broker overlaps with
validating the next. A failure restarts the consumer from the last commit: at least once, and
stage two drops the duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError
from aiokafka.partitioner import DefaultPartitioner
from mode import Service

from callpulse.kafka import client_kwargs, producer_acks
from callpulse.pseudonym import DEV_KEY, Pseudonymiser, pseudonymiser_for_key
from callpulse.settings import Settings
from stream.decode import Rejection, decode_message
from stream.kpi.timeutil import US_PER_S, us_to_rfc3339
from stream.records import routing_key
from stream.validation import EventValidator

log = logging.getLogger(__name__)

# Events per forwarded message: big enough to amortise stage two's per-message cost.
FORWARD_CHUNK = 1000
# A forwarded message stays under Kafka's default 1 MiB limit, however big the events.
MAX_FORWARD_BYTES = 900_000
PRODUCER_BATCH_BYTES = 1024 * 1024
POLL_TIMEOUT_MS = 200  # how soon an idle loop notices a stop
RETRY_AFTER_S = 1.0
# Routing keys whose partition is remembered (queues, agents, customers): past it, start over.
KEY_CACHE_SIZE = 100_000

# Valid events by routed-topic partition, each list in arrival order.
Routed = dict[int, list[dict[str, Any]]]


def now_us() -> int:
    return int(time.time() * US_PER_S)


class KeyPartitions:
    """The routed-topic partition of a routing key, as the producer's default partitioner picks
    it for a message with that key (murmur2 of the key's UTF-8 bytes, like Kafka's Java
    client). Remembered per key: the hash is pure Python, several µs a key."""

    def __init__(self, partitions: Iterable[int]) -> None:
        # What AIOKafkaProducer passes its partitioner: the topic's partition ids.
        self.partitions = sorted(partitions)
        if not self.partitions:
            raise ValueError("a topic has at least one partition")
        self._partitioner = DefaultPartitioner()
        self._known: dict[str, int] = {}

    def of(self, key: str) -> int:
        partition = self._known.get(key)
        if partition is None:
            if len(self._known) >= KEY_CACHE_SIZE:
                self._known.clear()
            partition = self._partitioner(key.encode(), self.partitions, self.partitions)
            self._known[key] = partition
        return partition


ONE_PARTITION = KeyPartitions([0])
_OPEN_BRACE = ord("{")


def validate_batch(
    validator: EventValidator,
    values: list[Any],
    pseudonymiser: Pseudonymiser | None = None,
    *,
    partitions: KeyPartitions = ONE_PARTITION,
) -> tuple[Routed, list[Rejection]]:
    """Valid events by the partition of their routing key, in arrival order; the rejections.

    Callers are pseudonymised in both (producers may write raw ones to the input topic);
    without a pseudonymiser, the public development key's.
    """
    pseudonymise = pseudonymiser or pseudonymiser_for_key(DEV_KEY)
    partition_of = partitions.of
    routed: Routed = {}
    rejections: list[Rejection] = []
    received_us = now_us()
    loads = orjson.loads
    for value in values:
        # One JSON object, what most producers send, skips decode_message's lists and calls:
        # a document that starts with "{" and parses is an object. Anything else goes there.
        event: object = None
        if value and value[0] == _OPEN_BRACE:
            try:
                event = loads(value)
            except orjson.JSONDecodeError:
                event = None  # decode_message words the rejection
        candidates: Iterable[tuple[int, object]]
        if event is not None:
            candidates = ((0, event),)
        else:
            candidates, bad = decode_message(value)
            if bad:
                rejections.extend(pseudonymise.rejection(r) for r in bad)
        for index, candidate in candidates:
            result = validator.validate(candidate, now_us=received_us)
            if isinstance(result, Rejection):
                rejections.append(pseudonymise.rejection(replace(result, index=index)))
                continue
            partition = partition_of(routing_key(result))
            events = routed.get(partition)
            if events is None:
                events = routed[partition] = []
            events.append(pseudonymise.event(result))
    return routed, rejections


def forwarded_values(events: list[dict[str, Any]]) -> Iterator[bytes]:
    """``events`` as JSON arrays of at most FORWARD_CHUNK events and MAX_FORWARD_BYTES."""
    for start in range(0, len(events), FORWARD_CHUNK):
        yield from _within_limit(events[start : start + FORWARD_CHUNK])


def _within_limit(events: list[dict[str, Any]]) -> Iterator[bytes]:
    value = orjson.dumps(events)
    if len(value) <= MAX_FORWARD_BYTES or len(events) == 1:
        yield value
        return
    half = len(events) // 2
    yield from _within_limit(events[:half])
    yield from _within_limit(events[half:])


def next_offsets(batches: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, int]:
    """What to commit once ``batches`` are forwarded: one past each partition's last record."""
    return {tp: records[-1].offset + 1 for tp, records in batches.items() if records}


@dataclass(frozen=True, slots=True)
class SentBatch:
    """A batch whose sends are under way, and the offsets to commit once all are acknowledged."""

    acks: list[asyncio.Future[Any]]
    offsets: dict[TopicPartition, int]


class InOrderCommits:
    """Keeps one batch in flight: batch N's acknowledgements are awaited only after batch N+1
    was validated and sent, so the broker's round trips overlap with the next batch's CPU work.
    Its offsets are then committed in the background: the next poll does not wait for the
    group coordinator's answer (a round trip that, under load, held stage one for tens of ms a
    batch). One commit at a time, in order; offsets acknowledged while one is under way are
    merged into the next. A commit never passes an unacknowledged send; after a failed one
    nothing more is committed (the consumer restarts from the last commit). ``push(None)``
    returns once everything sent so far is acknowledged and committed.
    """

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.in_flight: SentBatch | None = None
        self.failure: BaseException | None = None
        self._to_commit: dict[TopicPartition, int] = {}
        self._committing: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()

    async def push(self, sent: SentBatch | None) -> None:
        """Settles the batch in flight and has its offsets committed, then keeps ``sent``
        (None: nothing left in flight, every commit made)."""
        async with self._lock:
            self._raise_failure()
            previous, self.in_flight = self.in_flight, sent
            if previous is not None:
                try:
                    await asyncio.gather(*previous.acks)
                except Exception as exc:
                    self.failure = exc
                    raise
                self._to_commit.update(previous.offsets)  # later offsets win: they are higher
                if self._committing is None or self._committing.done():
                    self._committing = asyncio.ensure_future(self._commit_all())
            if sent is None and self._committing is not None:
                await asyncio.shield(self._committing)
                self._raise_failure()

    def _raise_failure(self) -> None:
        committing = self._committing
        if self.failure is None and committing and committing.done() and not committing.cancelled():
            self.failure = committing.exception()
        if self.failure is not None:
            raise self.failure

    async def _commit_all(self) -> None:
        while self._to_commit:
            offsets, self._to_commit = self._to_commit, {}
            await _commit(self.consumer, offsets)

    async def abandon(self) -> None:
        """Stops a commit still under way (the consumer is about to close after a failure:
        it restarts from whatever was committed, which never passes an acknowledged send)."""
        committing, self._committing = self._committing, None
        if committing is not None:
            committing.cancel()
            with contextlib.suppress(BaseException):
                await committing


class _StageOneRebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits the batch in flight before partitions are revoked, so their next owner starts
    after it instead of forwarding it again; starts a partition this group never committed
    where the Faust agent that ran stage one before had got to (``legacy_starts``)."""

    def __init__(self, commits: InOrderCommits, legacy_starts: dict[TopicPartition, int]) -> None:
        self.commits = commits
        self.legacy_starts = legacy_starts

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.commits.push(None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self.commits.consumer
        for tp in set(assigned) & self.legacy_starts.keys():
            if await consumer.committed(tp) is None:
                log.info("stage one starts %s at the old agent's offset", tp)
                consumer.seek(tp, self.legacy_starts[tp])


async def legacy_starts(
    settings: Settings, consumer: AIOKafkaConsumer
) -> dict[TopicPartition, int]:
    """Offsets the app's own group (where Faust ran stage one before) committed on the input
    topic, for the partitions stage one's group never committed: an upgraded worker carries on
    from there instead of replaying the topic's whole retention (more than dedupe remembers)."""
    await consumer.topics()  # metadata, so partitions_for_topic knows the input topic
    topic = settings.events_topic
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    if not partitions:
        return {}
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        old = await admin.list_consumer_group_offsets(settings.app_id, partitions=partitions)
        new = await admin.list_consumer_group_offsets(
            settings.validate_group, partitions=partitions
        )
    finally:
        await admin.close()
    never_committed = {tp for tp in partitions if tp not in new or new[tp].offset < 0}
    return {tp: m.offset for tp, m in old.items() if tp in never_committed and m.offset >= 0}


class Ingress(Service):
    """Stage one as a service of the worker: started with it, stopped (batch finished) with it."""

    # stop() waits for the loop to finish its batch (set_shutdown) before cancelling it.
    wait_for_shutdown = True
    shutdown_timeout = 30.0

    def __init__(
        self,
        settings: Settings,
        validator: EventValidator,
        pseudonymiser: Pseudonymiser,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.validator = validator
        self.pseudonymiser = pseudonymiser
        self._partitions: KeyPartitions | None = None
        # The consumer of the attempt under way (stream.diagnose reads it).
        self.consumer: AIOKafkaConsumer | None = None

    @Service.task
    async def _consume_until_stopped(self) -> None:
        try:
            while not self.should_stop:
                try:
                    await self._consume()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Nothing was committed past the last acknowledged batch: restart there.
                    log.exception("stage one failed; restarting from the last commit")
                    await self.sleep(RETRY_AFTER_S)
        finally:
            self.set_shutdown()

    async def _consume(self) -> None:
        consumer, producer = self._consumer(), self._producer()
        self.consumer = consumer
        commits = InOrderCommits(consumer)
        try:
            await producer.start()
            await consumer.start()
            rebalance = _StageOneRebalance(commits, await legacy_starts(self.settings, consumer))
            consumer.subscribe([self.settings.events_topic], listener=rebalance)
            while not self.should_stop:
                batches = await consumer.getmany(
                    timeout_ms=POLL_TIMEOUT_MS, max_records=self.settings.ingest_batch_max
                )
                await commits.push(await self._forward(producer, batches) if batches else None)
            await commits.push(None)  # the last batch, before leaving the group
        finally:
            await commits.abandon()
            await consumer.stop()
            await producer.stop()

    async def _forward(
        self, producer: AIOKafkaProducer, batches: dict[TopicPartition, list[Any]]
    ) -> SentBatch:
        """Validates the batch and sends its valid events and rejections on their way."""
        values = [record.value for records in batches.values() for record in records]
        partitions = await self._routed_partitions(producer)
        routed, rejections = validate_batch(
            self.validator, values, self.pseudonymiser, partitions=partitions
        )
        return SentBatch(await self._send(producer, routed, rejections), next_offsets(batches))

    async def _routed_partitions(self, producer: AIOKafkaProducer) -> KeyPartitions:
        """The routed topic's partitions as the producer's metadata knows them now (what a
        keyed send would hash over); the same ones as last time keep their remembered keys."""
        ids = await producer.partitions_for(self.settings.routed_topic)
        if self._partitions is None or self._partitions.partitions != sorted(ids):
            self._partitions = KeyPartitions(ids)
        return self._partitions

    async def _send(
        self, producer: AIOKafkaProducer, routed: Routed, rejections: list[Rejection]
    ) -> list[asyncio.Future[Any]]:
        routed_topic, dlq_topic = self.settings.routed_topic, self.settings.dlq_topic
        acks = []
        for partition, events in routed.items():
            for value in forwarded_values(events):
                acks.append(await producer.send(routed_topic, value, partition=partition))
        received_at = us_to_rfc3339(now_us())
        for rejection in rejections:
            record = rejection.to_dlq(source="worker", received_at=received_at)
            acks.append(await producer.send(dlq_topic, orjson.dumps(record)))
        return acks

    def _consumer(self) -> AIOKafkaConsumer:
        settings = self.settings
        return AIOKafkaConsumer(
            **client_kwargs(settings),
            group_id=settings.validate_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=round(settings.kafka_session_timeout_s * 1000),
            heartbeat_interval_ms=round(settings.kafka_heartbeat_interval_s * 1000),
        )

    def _producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **client_kwargs(self.settings),
            acks=producer_acks(self.settings),
            max_batch_size=PRODUCER_BATCH_BYTES,
        )


async def _commit(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
    """Commits what is still ours; a partition lost to a rebalance is forwarded again by its
    next owner, which stage two dedupes."""
    assigned = consumer.assignment()
    owned = {tp: offset for tp, offset in offsets.items() if tp in assigned}
    try:
        await consumer.commit(owned)
    except CommitFailedError as exc:
        log.info("stage one commit lost to a rebalance (%s); the next owner re-reads", exc)
