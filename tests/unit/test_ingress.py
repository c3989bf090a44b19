"""Stage one's pure parts: where events go, how forwarded messages are cut, and which offsets
a batch commits."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from stream.ingress import (
    FORWARD_CHUNK,
    MAX_FORWARD_BYTES,
    KeyPartitions,
    forwarded_values,
    next_offsets,
    validate_batch,
)
from stream.records import routing_key
from stream.validation import EventValidator

PARTITIONS = 8


def events(count: int, *, padding: int = 0) -> list[dict[str, Any]]:
    return [{"event_id": f"e{i}", "pad": "x" * padding} for i in range(count)]


@pytest.mark.parametrize(
    ("count", "padding", "expected_sizes"),
    [
        (0, 0, []),  # nothing valid in the batch: nothing forwarded
        (1, 0, [1]),
        (FORWARD_CHUNK, 0, [FORWARD_CHUNK]),  # exactly one chunk
        (FORWARD_CHUNK + 1, 0, [FORWARD_CHUNK, 1]),  # one over: a second message of one
        (2 * FORWARD_CHUNK + 5, 0, [FORWARD_CHUNK, FORWARD_CHUNK, 5]),
        (4, 300_000, [2, 2]),  # 1.2 MB of events: halved until each message fits
        (3, 400_000, [1, 2]),  # odd halves: 1 then 2 (800 kB, under the limit)
        (1, 1_000_000, [1]),  # one event over the limit alone: sent as it is, never dropped
    ],
)
def test_forwarded_values_split_by_count_then_size(
    count: int, padding: int, expected_sizes: list[int]
) -> None:
    sent = events(count, padding=padding)
    values = list(forwarded_values(sent))
    arrays = [orjson.loads(value) for value in values]
    assert [len(array) for array in arrays] == expected_sizes
    # Every event once, in order: stage two sees the arrival order within a routing key.
    assert [event for array in arrays for event in array] == sent
    # Only an event alone may exceed the size limit.
    sizes = zip(values, arrays, strict=True)
    assert all(len(array) == 1 for value, array in sizes if len(value) > MAX_FORWARD_BYTES)


@dataclass(frozen=True)
class Record:
    offset: int


def test_next_offsets_are_one_past_each_partitions_last_record() -> None:
    first, second, empty = (TopicPartition("events", p) for p in range(3))
    batches = {first: [Record(4), Record(5)], second: [Record(0)], empty: []}
    # Kafka's committed offset is the next one to read; a partition without records is left.
    assert next_offsets(batches) == {first: 6, second: 1}


def keyed_send_partition(key: str, partitions: int) -> int:
    """Where stage one's sends went while routed messages were keyed by routing key: what
    AIOKafkaProducer's default partitioner picks for that key over the topic's partitions."""
    ids = list(range(partitions))
    return int(DefaultPartitioner()(key.encode(), ids, ids))


# Kafka's Java client (Utils.murmur2, its own unit test): the hash every client agrees on.
JAVA_MURMUR2 = {"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
                "a-little-bit-longer-string": -1486304829, "abc": 479470107}  # fmt: skip


@pytest.mark.parametrize("partitions", [1, 3, 8, 12])
def test_a_key_goes_where_kafkas_clients_put_a_message_with_that_key(partitions: int) -> None:
    ids = KeyPartitions(range(partitions))
    for key, java_hash in JAVA_MURMUR2.items():
        assert ids.of(key) == (java_hash & 0x7FFFFFFF) % partitions
    keys = [f"q:queue-{i}" for i in range(300)] + [f"a:agent-{i}" for i in range(300)]
    keys += ["centre", "k:cust-1", "q:\u00e9t\u00e9"]  # non-ASCII: hashed as UTF-8 bytes
    for key in keys:
        assert ids.of(key) == ids.of(key) == keyed_send_partition(key, partitions), key


def mixed_traffic(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Valid events of every routing family (queues, agents, customers, the centre), each
    routing key's events in a known order (their sequence number ``n``)."""
    rng = random.Random(seed)
    ts = datetime.now(UTC).isoformat()
    out: list[dict[str, Any]] = []
    for n in range(count):
        base = {"event_id": f"e{n}", "ts": ts, "n": n}
        family = rng.random()
        if family < 0.6:
            queue = f"queue-{rng.randrange(200)}"
            call = {"call_id": f"c{n}", "caller": "+441632960001"}
            out.append({**base, "type": "call.offered", "queue": queue, **call})
        elif family < 0.9:
            agent = f"agent-{rng.randrange(2000)}"
            out.append({**base, "type": "agent.state", "agent_id": agent, "state": "available"})
        elif family < 0.95:
            out.append({**base, "type": "customer.acquired", "customer_id": f"cu{n % 7}"})
        else:
            out.append({**base, "type": "kb.article_viewed", "article_id": "kb1"})
    return out


def test_events_are_packed_by_their_keys_partition_in_arrival_order() -> None:
    sent = mixed_traffic(3000)
    # Single-event messages and arrays, as third-party producers and the API write them.
    values = [orjson.dumps(e) for e in sent[:2000]]
    values += [orjson.dumps(sent[i : i + 100]) for i in range(2000, 3000, 100)]
    routed, rejections = validate_batch(
        EventValidator(), values, partitions=KeyPartitions(range(PARTITIONS))
    )
    assert rejections == []
    # A handful of groups, not one per queue and agent: that is the point of packing.
    assert set(routed) <= set(range(PARTITIONS))
    assert sorted(e["n"] for events in routed.values() for e in events) == list(range(3000))
    for partition, events in routed.items():
        for event in events:
            # The same partition as when the event was sent under its routing key.
            assert keyed_send_partition(routing_key(event), PARTITIONS) == partition, event
        # Arrival order within the partition, hence within each routing key.
        assert [e["n"] for e in events] == sorted(e["n"] for e in events)
    by_key: dict[str, list[int]] = {}
    for events in routed.values():
        for event in events:
            by_key.setdefault(routing_key(event), []).append(event["n"])
    expected: dict[str, list[int]] = {}
    for event in sent:
        expected.setdefault(routing_key(event), []).append(event["n"])
    assert by_key == expected


def test_forwarded_messages_keep_a_partitions_order_across_chunks() -> None:
    sent = mixed_traffic(2 * FORWARD_CHUNK + 500, seed=11)
    routed, _ = validate_batch(
        EventValidator(), [orjson.dumps(e) for e in sent], partitions=KeyPartitions([0, 1])
    )
    for events in routed.values():
        arrays = [orjson.loads(value) for value in forwarded_values(events)]
        assert all(len(array) <= FORWARD_CHUNK for array in arrays)
        assert [e["n"] for array in arrays for e in array] == [e["n"] for e in events]


def test_a_topic_without_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        KeyPartitions([])
