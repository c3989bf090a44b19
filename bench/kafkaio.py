"""Filling topics fast, and reading back when (and how much) a worker processed.

Timing comes from the Kafka record timestamps of the worker's own changelog writes (producer
CreateTime, which the embedded broker keeps), read after the run: the bench watches nothing
while the worker runs except, once a second, the group's committed offsets, so it takes no CPU
from the two cores it measures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from bench.events import Message

MAX_BATCH_BYTES = 1024 * 1024
COMMIT_INTERVAL_S = 2.8  # Faust's default broker_commit_interval
_PARTITIONER = DefaultPartitioner()


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


def partition_for(key: bytes | None, partitions: int, fallback: int) -> int:
    """The partition aiokafka's default partitioner (murmur2) gives ``key``, as Faust's would."""
    if key is None:
        return fallback % partitions
    return int(_PARTITIONER(key, list(range(partitions)), None))


class Filler:
    """Appends messages into per-partition record batches and sends them as they fill up.

    Building batches directly is several times cheaper than ``producer.send`` per message,
    which matters when a scenario pre-fills millions of messages.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str, partitions: int) -> None:
        self.producer, self.topic, self.partitions = producer, topic, partitions
        self.batches: dict[int, Any] = {}
        self.pending: list[asyncio.Future[Any]] = []
        self.messages = 0
        self.per_partition: dict[int, int] = {}

    async def add(self, key: bytes | None, value: bytes | None) -> None:
        await self.add_to(partition_for(key, self.partitions, self.messages), key, value)

    async def add_to(self, partition: int, key: bytes | None, value: bytes | None) -> None:
        batch = self.batches.get(partition)
        if batch is None:
            batch = self.batches[partition] = self.producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:
            await self._send(partition)
            batch = self.batches[partition] = self.producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"a message of {len(value or b'')} bytes exceeds a batch")
        self.messages += 1
        self.per_partition[partition] = self.per_partition.get(partition, 0) + 1
        if len(self.pending) >= 64:
            await asyncio.gather(*self.pending)
            self.pending.clear()

    async def _send(self, partition: int) -> None:
        batch = self.batches.pop(partition)
        batch.close()
        self.pending.append(await self.producer.send_batch(batch, self.topic, partition=partition))

    async def flush(self) -> None:
        for partition in list(self.batches):
            await self._send(partition)
        await asyncio.gather(*self.pending)
        self.pending.clear()


def producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        max_batch_size=MAX_BATCH_BYTES,
        max_request_size=16 * MAX_BATCH_BYTES,
    )


@dataclass(frozen=True, slots=True)
class Filled:
    events: int
    messages: int
    ends: dict[TopicPartition, int]  # exact end offsets: the embedded broker under-reports them


async def fill_topic(
    bootstrap: str, topic: str, partitions: int, messages: Iterable[Message]
) -> Filled:
    """Produce every message (a JSON array when it holds several events, else the event)."""
    client = producer(bootstrap)
    await client.start()
    filler = Filler(client, topic, partitions)
    events = 0
    try:
        for key, batch in messages:
            value = orjson.dumps(batch[0] if len(batch) == 1 else batch)
            await filler.add(key, value)
            events += len(batch)
        await filler.flush()
    finally:
        await client.stop()
    ends = {TopicPartition(topic, p): count for p, count in filler.per_partition.items()}
    return Filled(events, filler.messages, ends)


async def end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return ends
    finally:
        await consumer.stop()


Offsets = dict[TopicPartition, int]


async def topic_exists(bootstrap: str, topic: str) -> bool:
    """Whether the broker lists ``topic`` (a metadata request for all topics creates none)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        return topic in await consumer.topics()
    finally:
        await consumer.stop()


async def group_offsets(bootstrap: str, group: str, topics: list[str]) -> tuple[Offsets, Offsets]:
    """End offsets of ``topics`` as the broker reports them, and what ``group`` committed."""
    ends = await end_offsets(bootstrap, topics)
    if not ends:
        return {}, {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # Naming the partitions: the embedded broker only answers that form.
        committed = await admin.list_consumer_group_offsets(group, partitions=list(ends))
    finally:
        await admin.close()
    return ends, {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}


def behind(ends: Offsets, committed: Offsets) -> int:
    return sum(max(end - committed.get(tp, 0), 0) for tp, end in ends.items())


def wait_drained(
    bootstrap: str,
    groups: dict[str, list[str]],
    exact_ends: Offsets,
    timeout_s: float,
    check: Callable[[], None],
) -> None:
    """Until every group has committed everything in its topics and stopped committing.

    ``groups`` maps a consumer group to the topics it reads (the worker's two stages commit
    in two groups). The embedded broker reports a partition's end as the last record batch's
    first offset plus one, so for topics the bench did not fill (the worker's own stage topic)
    "done" also needs the commits to stand still across one commit interval; the changelog
    count checks it after.
    """
    deadline = time.monotonic() + timeout_s
    previous: Offsets | None = None
    while True:
        check()
        ends: Offsets = {}
        committed: Offsets = {}
        for group, topics in groups.items():
            group_ends, group_committed = asyncio.run(group_offsets(bootstrap, group, topics))
            ends.update(group_ends)
            committed.update(group_committed)
        ends.update(exact_ends)
        if behind(ends, committed) == 0 and committed == previous:
            return
        previous = committed
        if time.monotonic() > deadline:
            raise TimeoutError(f"{', '.join(groups)}: not drained after {timeout_s:.0f} s")
        time.sleep(COMMIT_INTERVAL_S + 0.5)


async def _reached(consumer: AIOKafkaConsumer, ends: Offsets) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


async def first_timestamp_ms(bootstrap: str, topic: str, timeout_s: float = 30.0) -> int | None:
    """The earliest record timestamp among the first records of ``topic``'s partitions."""
    ends = {tp: end for tp, end in (await end_offsets(bootstrap, [topic])).items() if end > 0}
    if not ends:
        return None
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    firsts: dict[TopicPartition, int] = {}
    try:
        consumer.assign(list(ends))
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout_s
        while len(firsts) < len(ends) and time.monotonic() < deadline:
            for tp, messages in (await consumer.getmany(timeout_ms=500, max_records=1)).items():
                if messages and tp not in firsts:
                    firsts[tp] = messages[0].timestamp
                    consumer.pause(tp)
    finally:
        await consumer.stop()
    return min(firsts.values(), default=None)


@dataclass(frozen=True, slots=True)
class Progress:
    """What a changelog says about a run: events counted and when the first and last landed."""

    events: int
    first_ms: int | None
    last_ms: int | None  # when the last counter took its final value
    records: int

    def rate(self, started_ms: int | None = None) -> float | None:
        """Events/s from ``started_ms`` (default: the first counter write) to the last one."""
        first = (
            self.first_ms if started_ms is None else min(started_ms, self.first_ms or started_ms)
        )
        if first is None or self.last_ms is None or self.last_ms <= first:
            return None
        return self.events / ((self.last_ms - first) / 1000)


CountOf = Callable[[bytes, bytes | None], int | None]


async def changelog_progress(
    bootstrap: str, topic: str, count_of: CountOf, timeout_s: float = 900.0
) -> Progress:
    """Replays a changelog whose counter records ``count_of`` recognises (None: not a counter).

    Counters only grow, so the events processed are the sum of each counter's latest value and
    the run ended when the last counter took its final value.
    """
    ends = {tp: end for tp, end in (await end_offsets(bootstrap, [topic])).items() if end > 0}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * MAX_BATCH_BYTES,
    )
    await consumer.start()
    latest: dict[bytes, tuple[int, int]] = {}
    first_ms: int | None = None
    records = 0
    try:
        consumer.assign(list(ends))
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout_s
        while not await _reached(consumer, ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took over {timeout_s:.0f} s")
            for messages in (await consumer.getmany(timeout_ms=500, max_records=20000)).values():
                records += len(messages)
                for message in messages:
                    count = count_of(message.key or b"", message.value)
                    if count is None:
                        continue
                    latest[message.key or b""] = (count, message.timestamp)
                    if first_ms is None or message.timestamp < first_ms:
                        first_ms = message.timestamp
    finally:
        await consumer.stop()
    total = sum(count for count, _ in latest.values())
    last_ms = max((ts for _, ts in latest.values()), default=None)
    return Progress(total, first_ms, last_ms, records)
