"""The simulator against the embedded broker: micro-batched messages, keys, counts, stopping."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from callpulse.settings import Settings
from callpulse.simulator.producer import partition_key, producer_options, run_simulator
from callpulse.simulator.profiles import default_centre
from stream.kpi.timeutil import US_PER_S, parse_ts_us

pytestmark = pytest.mark.broker

PARTITIONS = 3
CONSUME_TIMEOUT_S = 30.0


def kafka_options(broker: str) -> dict[str, Any]:
    """What ``callpulse simulate`` builds its producer from, for the embedded broker."""
    return producer_options(Settings(kafka_bootstrap=broker, kafka_acks="1"))


async def create_topic(broker: str) -> str:
    topic = f"sim-test-{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    return topic


async def consume(broker: str, topic: str, events_wanted: int) -> list[tuple[bytes, Any]]:
    """(key, decoded value) of every message until ``events_wanted`` events have been read."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=broker, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    messages: list[tuple[bytes, Any]] = []
    events_read = 0
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    try:
        while events_read < events_wanted and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    value = orjson.loads(record.value)
                    messages.append((record.key, value))
                    events_read += len(value) if isinstance(value, list) else 1
        await asyncio.sleep(0.5)  # anything beyond the count would show up here
        for records in (await consumer.getmany(timeout_ms=500)).values():
            messages.extend((record.key, orjson.loads(record.value)) for record in records)
    finally:
        await consumer.stop()
    return messages


async def test_backfill_and_live_traffic_arrive_as_keyed_json_arrays(broker: str) -> None:
    topic = await create_topic(broker)
    centre = default_centre()
    started_us = round(time.time() * US_PER_S)
    produced = await run_simulator(
        kafka=kafka_options(broker),
        topic=topic,
        centre=centre,
        seed=7,
        backfill_s=600.0,
        duration_s=2.0,
        batch_max=50,
    )
    finished_us = round(time.time() * US_PER_S)
    assert produced > 200  # ten minutes of a 400-calls-an-hour centre

    messages = await consume(broker, topic, produced)
    events = [event for _, value in messages for event in value]
    assert all(isinstance(value, list) and 1 <= len(value) <= 50 for _, value in messages)
    assert len(events) == produced
    assert len({event["event_id"] for event in events}) == produced
    queue_names = {queue.name for queue in centre.queues}
    for key, value in messages:
        assert {partition_key(event).encode() for event in value} == {key}
        if any(str(event["type"]).startswith("call.") for event in value):
            assert key.decode() in queue_names
    times_us = [parse_ts_us(event["ts"]) for event in events]
    assert min(times_us) >= started_us - 600 * US_PER_S
    assert max(times_us) < finished_us  # never an event from the future


async def test_setting_stop_ends_the_run_promptly(broker: str) -> None:
    topic = await create_topic(broker)
    stop = asyncio.Event()
    run = asyncio.create_task(
        run_simulator(
            kafka=kafka_options(broker),
            topic=topic,
            centre=default_centre(),
            seed=1,
            backfill_s=60.0,
            stop=stop,
        )
    )
    await asyncio.sleep(1.0)
    stop.set()
    stopped_at = time.monotonic()
    produced = await asyncio.wait_for(run, timeout=10.0)
    assert time.monotonic() - stopped_at < 2.0  # within a tick, not at some deadline
    assert produced > 0  # the minute of backfill went out before the stop


async def test_cancelling_the_run_stops_the_producer(broker: str) -> None:
    topic = await create_topic(broker)
    run = asyncio.create_task(
        run_simulator(
            kafka=kafka_options(broker),
            topic=topic,
            centre=default_centre(),
            seed=1,
            backfill_s=300.0,
        )
    )
    await asyncio.sleep(1.0)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, timeout=10.0)
