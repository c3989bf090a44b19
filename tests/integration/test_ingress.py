"""Stage one (``stream.ingress``) on the real broker: what it forwards, and what it commits.

Its contract: every valid input event reaches the routed topic (in a JSON array on the
partition a message keyed by the event's routing key would have gone to), every invalid one
the DLQ, and the input offsets are committed in the stage's own group only once all of that
was acknowledged. A clean stop finishes the batch in hand, so a restarted stage one forwards
nothing twice and nothing is lost.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from callpulse.kafka import ensure_topics
from callpulse.pseudonym import DEV_KEY, pseudonymiser_for_key
from callpulse.settings import Settings
from stream.ingress import Ingress
from stream.records import routing_key
from stream.validation import EventValidator
from tests.integration.stack import start_stack

pytestmark = pytest.mark.broker

Offsets = dict[TopicPartition, int]


def offered(event_id: str, queue: str) -> dict[str, Any]:
    return {"event_id": event_id, "type": "call.offered", "ts": datetime.now(UTC).isoformat(),
            "queue": queue, "call_id": f"call-{event_id}", "caller": "+441632960001"}  # fmt: skip


async def produce(bootstrap: str, topic: str, values: list[bytes], partitions: int) -> Offsets:
    """One message per value, round robin over the partitions; returns the end offsets."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1)
    await producer.start()
    ends: Offsets = {}
    try:
        sent = [
            await producer.send(topic, value, partition=i % partitions)
            for i, value in enumerate(values)
        ]
        for metadata in await asyncio.gather(*sent):
            tp = TopicPartition(topic, metadata.partition)
            ends[tp] = max(ends.get(tp, 0), metadata.offset + 1)
    finally:
        await producer.stop()
    return ends


async def committed(bootstrap: str, group: str, partitions: list[TopicPartition]) -> Offsets:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        found = await admin.list_consumer_group_offsets(group, partitions=partitions)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}


async def wait_committed(bootstrap: str, group: str, ends: Offsets, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while await committed(bootstrap, group, list(ends)) != ends:
        assert time.monotonic() < deadline, f"{group} did not commit {ends}"
        await asyncio.sleep(0.2)


async def read_all(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` up to its current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    found: list[ConsumerRecord[bytes, bytes]] = []
    try:
        await consumer.topics()  # metadata, so partitions_for_topic knows the topic
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(records)
    finally:
        await consumer.stop()
    return found


async def partition_count(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()
        return len(consumer.partitions_for_topic(topic) or ())
    finally:
        await consumer.stop()


def forwarded_events(
    records: list[ConsumerRecord[bytes, bytes]], partitions: int
) -> list[dict[str, Any]]:
    """The events of the routed topic, each checked to sit on the partition where the producer's
    default partitioner puts a message keyed by the event's routing key."""
    ids = list(range(partitions))
    out = []
    for record in records:
        for event in orjson.loads(record.value):
            key = routing_key(event).encode()
            assert record.partition == DefaultPartitioner()(key, ids, ids), event
            out.append(event)
    return out


def test_stage_one_forwards_by_routing_key_and_commits_in_its_own_group(
    broker: str, tmp_path: Path
) -> None:
    stack = start_stack(broker, tmp_path, "ingress-forwards", api=False, partitions=3)
    settings = Settings(app_id=stack.env["CALLPULSE_APP_ID"], events_topic=stack.events_topic)
    valid = [offered(f"v{i}", f"queue-{i % 4}") for i in range(60)]
    invalid = [b"{not json", orjson.dumps({"event_id": "u1", "type": "call.teleported", "ts": 1})]
    values = [orjson.dumps(event) for event in valid] + invalid
    try:
        ends = asyncio.run(produce(broker, stack.events_topic, values, partitions=3))
        asyncio.run(wait_committed(broker, settings.validate_group, ends))
        routed = asyncio.run(read_all(broker, settings.routed_topic))
        dead = asyncio.run(read_all(broker, stack.dlq_topic))
        faust_group = asyncio.run(committed(broker, settings.app_id, list(ends)))
        routed_partitions = asyncio.run(partition_count(broker, settings.routed_topic))
    finally:
        stack.stop()
    # Faust declared the routed topic with the configured partitions before stage one wrote.
    assert routed_partitions == 3  # the broker's own default would be another number
    forwarded = forwarded_events(routed, routed_partitions)
    assert sorted(e["event_id"] for e in forwarded) == sorted(e["event_id"] for e in valid)
    assert all(e["caller"] != "+441632960001" for e in forwarded)  # pseudonymised on the way
    reasons = sorted(orjson.loads(record.value)["reason"] for record in dead)
    assert reasons == ["invalid_json", "unknown_type"]
    assert faust_group == {}  # the input topic is no longer read by a Faust agent


def settings_for(broker: str, name: str) -> Settings:
    suffix = f"{name}-{uuid.uuid4().hex[:8]}"
    return Settings(
        kafka_bootstrap=broker,
        kafka_acks="1",
        kafka_session_timeout_s=4.0,
        kafka_heartbeat_interval_s=1.0,
        app_id=f"cp-{suffix}",
        events_topic=f"events-{suffix}",
        dlq_topic=f"dlq-{suffix}",
        partitions=2,
        ingest_batch_max=50,  # many batches, so a stop lands mid-stream
    )


async def input_topic_of(
    broker: str, name: str, events: list[dict[str, Any]]
) -> tuple[Settings, Offsets]:
    """Settings of their own, the topics created, and ``events`` produced one a message: the
    input topic's end offsets."""
    settings = settings_for(broker, name)
    await create_topics(settings)
    values = [orjson.dumps(e) for e in events]
    return settings, await produce(broker, settings.events_topic, values, settings.partitions)


async def running_ingress(settings: Settings, until: Callable[[], Awaitable[bool]]) -> None:
    """One stage-one service from start until ``until()`` holds, then stopped cleanly."""
    service = Ingress(settings, EventValidator(), pseudonymiser_for_key(DEV_KEY))
    await service.start()
    try:
        deadline = time.monotonic() + 60
        while not await until():
            assert time.monotonic() < deadline, "stage one made no progress"
            await asyncio.sleep(0.05)
    finally:
        await service.stop()


async def create_topics(settings: Settings) -> None:
    await ensure_topics(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:  # in the worker Faust declares it; here there is no Faust
        await admin.create_topics([NewTopic(settings.routed_topic, settings.partitions, 1)])
    finally:
        await admin.close()


def offset_of(index: int, settings: Settings) -> tuple[TopicPartition, int]:
    """Where ``produce`` put its ``index``-th message (round robin on a fresh topic)."""
    tp = TopicPartition(settings.events_topic, index % settings.partitions)
    return tp, index // settings.partitions


async def test_a_stopped_stage_one_resumes_after_its_commit_and_forwards_each_event_once(
    broker: str,
) -> None:
    # Enough that a stop after the first commit lands mid-stream on a fast machine too: stage
    # one goes through 2,000 events in the time the test takes to see a commit.
    valid = [offered(f"r{i}", f"queue-{i % 7}") for i in range(20_000)]
    settings, ends = await input_topic_of(broker, "ingress-restart", valid)
    group, partitions = settings.validate_group, list(ends)

    async def some_committed() -> bool:
        return bool(await committed(broker, group, partitions))

    # Stopped mid-stream, as soon as its first batch is committed.
    await running_ingress(settings, some_committed)
    at_stop = await committed(broker, group, partitions)
    assert at_stop != ends, "stage one drained everything before the stop: nothing was tested"
    forwarded_at_stop = Counter(e["event_id"] for e in forwarded_events(
        await read_all(broker, settings.routed_topic), settings.partitions))  # fmt: skip
    # Committed means forwarded: every message below the commit is on the routed topic.
    below_commit = set()
    for index, event in enumerate(valid):
        tp, offset = offset_of(index, settings)
        if offset < at_stop.get(tp, 0):
            below_commit.add(event["event_id"])
    assert below_commit <= set(forwarded_at_stop)

    async def all_committed() -> bool:
        return await committed(broker, group, partitions) == ends

    await running_ingress(settings, all_committed)
    forwarded = Counter(
        e["event_id"]
        for e in forwarded_events(
            await read_all(broker, settings.routed_topic), settings.partitions
        )
    )
    # The clean stop finished its batch and committed it: nothing twice, nothing missing.
    assert forwarded == Counter(e["event_id"] for e in valid)


async def test_an_upgraded_worker_starts_where_the_old_faust_agent_had_committed(
    broker: str,
) -> None:
    """Before stream.ingress, a Faust agent read the input topic in the app's own group."""
    valid = [offered(f"u{i}", f"queue-{i % 3}") for i in range(40)]
    settings, ends = await input_topic_of(broker, "ingress-upgrade", valid)
    old_agent_at = {tp: end // 2 for tp, end in ends.items()}
    old_agent = AIOKafkaConsumer(bootstrap_servers=broker, group_id=settings.app_id)
    await old_agent.start()
    try:
        old_agent.assign(list(ends))
        await old_agent.commit(old_agent_at)
    finally:
        await old_agent.stop()

    async def all_committed() -> bool:
        return await committed(broker, settings.validate_group, list(ends)) == ends

    await running_ingress(settings, all_committed)
    forwarded = [e["event_id"] for e in forwarded_events(
        await read_all(broker, settings.routed_topic), settings.partitions)]  # fmt: skip
    not_yet_read = []
    for index, event in enumerate(valid):
        tp, offset = offset_of(index, settings)
        if offset >= old_agent_at[tp]:
            not_yet_read.append(event["event_id"])
    # What the old agent had done is not replayed; everything after it is forwarded once.
    assert sorted(forwarded) == sorted(not_yet_read)
