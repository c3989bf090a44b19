"""Stage one's pure parts: how forwarded messages are cut, and which offsets a batch commits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from stream.ingress import FORWARD_CHUNK, MAX_FORWARD_BYTES, forwarded_values, next_offsets


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
