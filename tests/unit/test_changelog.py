"""Stage two's table writes (``stream.changelog.RunWrites``): the changelog records they keep.

Checked against Faust itself: the bytes its changelog topic makes of the same key and value
(``prepare_key`` / ``prepare_value``, what ``table[key] = value`` and ``del table[key]`` send),
and against the processor's own contract (aggregates before states, reads see the run's writes).
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Iterator
from typing import Any

import faust
import orjson
import pytest

from stream import records
from stream.changelog import RunWrites, encode, local_store, max_batch_bytes
from stream.expiry import Record
from stream.kpi.config import CentreConfig
from stream.processor import MessageProcessor, Retention
from tests.unit.test_processor import generated_messages, s, scenario_messages

KEEP_ALL = Retention(buckets_s=10**9, call_state_s=10**9, ticket_state_s=10**9)
STATE_FAMILIES = tuple(f"{f}{records.SEP}" for f in (records.CALL, records.TICKET, records.SEEN))


@pytest.fixture(scope="module")
def table() -> Any:
    """A state table declared as the worker declares it (JSON keys and values)."""
    app = faust.App("changelog-test", key_serializer="json", value_serializer="json")
    return app.Table("state", default=None, partitions=4)


def faust_record(table: Any, key: str, value: Any) -> tuple[bytes, bytes | None]:
    """What Faust's table sends for ``table[key] = value`` (``value`` None: ``del table[key]``,
    which Faust sends with the raw serializer)."""
    topic = table.changelog_topic
    key_bytes, _ = topic.prepare_key(key, table.key_serializer)
    if value is None:
        value_bytes, _ = topic.prepare_value(None, "raw")
    else:
        value_bytes, _ = topic.prepare_value(value, table.value_serializer)
    return key_bytes, value_bytes


class RecordingDict(dict[str, Record]):
    """The local store, remembering every value handed to it (the processor never mutates a
    value once written, so the objects still hold what was written)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, Record | None]] = []

    def __setitem__(self, key: str, value: Record) -> None:
        self.writes.append((key, value))
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.writes.append((key, None))
        super().__delitem__(key)


def _processed(messages: list[list[dict[str, Any]]], data: dict[str, Record]) -> RunWrites:
    writes = RunWrites(data, partition=2)
    now_us = max(e["ts_us"] for m in messages for e in m) + s(5)
    batch = [(offset, copy.deepcopy(m)) for offset, m in enumerate(messages)]
    MessageProcessor(CentreConfig(), KEEP_ALL).process_batch(
        writes, batch, partition=2, now_us=now_us
    )
    return writes


def _odd_values(rng: random.Random) -> Iterator[Any]:
    """Values where JSON encoders differ: floats, non-ASCII and control characters, big ints."""
    floats = [0.1, 1 / 3, 1e20, 1e-7, -0.0, 2.5e-300, 1.7976931348623157e308, 100.0, 123456789.125]
    texts = ["é", "日本語", "emoji 😀", "\x1f", "\u2028", 'quote " and \\', "tab\t", ""]
    for _ in range(500):
        yield {
            "f": rng.choice(floats) * rng.choice([1, -1, rng.random()]),
            "t": rng.choice(texts) + str(rng.random()),
            "i": rng.randint(-(2**63), 2**63 - 1),
            "l": [rng.random(), rng.choice(texts), None, True, False],
            "tuple": (1, "x", 2.0),
            "nested": {rng.choice(texts): {"k": rng.uniform(-1e6, 1e6)}},
        }


def test_records_are_the_bytes_faust_writes_for_odd_values(table: Any) -> None:
    rng = random.Random(8)
    for number, value in enumerate(_odd_values(rng)):
        key = records.key(records.BUCKET, f"queue-é-{number}", 1_700_000_000_000_000)
        writes = RunWrites({}, partition=0)
        writes[key] = value
        assert writes.records == [faust_record(table, key, value)]


@pytest.mark.parametrize(
    "messages", [scenario_messages(), generated_messages(1), generated_messages(2)]
)
def test_records_of_a_processed_run_are_the_bytes_faust_writes(
    table: Any, messages: list[list[dict[str, Any]]]
) -> None:
    data = RecordingDict()
    writes = _processed(messages, data)
    assert len(writes.records) == len(data.writes) > 0
    expected = [faust_record(table, key, value) for key, value in data.writes]
    assert writes.records == expected


def test_a_delete_is_a_tombstone_as_faust_writes_it(table: Any) -> None:
    key = records.key(records.SEEN, "event-1")
    writes = RunWrites({key: {"at": 1, records.PARTITION_FIELD: 0}}, partition=0)
    del writes[key]
    assert writes.records == [faust_record(table, key, None)]
    assert writes.records[0][1] is None
    assert writes.get(key) is None


def test_aggregates_are_written_before_states_and_dedupe_marks() -> None:
    writes = _processed(generated_messages(1)[:6], {})
    keys = [orjson.loads(key) for key, _ in writes.records]
    is_state = [key.startswith(STATE_FAMILIES) for key in keys]
    assert any(is_state) and not all(is_state)
    assert is_state == sorted(is_state), "a state or dedupe mark went before an aggregate"


def test_the_records_replayed_in_order_give_the_store(table: Any) -> None:
    """What Faust's recovery (and the API) rebuild from the changelog is the local store."""
    messages = scenario_messages() + generated_messages(2)
    data: dict[str, Record] = {}
    writes = _processed(messages, data)
    del writes[next(iter(data))]
    replayed: dict[str, Any] = {}
    for key, value in writes.records:
        if value is None:
            replayed.pop(orjson.loads(key), None)
        else:
            replayed[orjson.loads(key)] = orjson.loads(value)
    assert replayed == orjson.loads(orjson.dumps(data))


def test_reads_see_the_runs_own_writes() -> None:
    data: dict[str, Record] = {"old": {"n": 1}}
    writes = RunWrites(data, partition=1)
    assert writes.get("old") == {"n": 1}
    writes["new"] = {"n": 2}
    writes["old"] = {"n": 3}
    assert writes.get("new") == {"n": 2} and writes.get("old") == {"n": 3}
    assert data == {"old": {"n": 3}, "new": {"n": 2}}
    assert set(writes.keys()) == set(data)
    assert [orjson.loads(key) for key, _ in writes.records] == ["new", "old"]


def test_a_message_later_in_the_run_sees_an_earlier_ones_dedupe_mark() -> None:
    """The same event in two messages of one run counts once: the second reads the first's
    writes through the adapter."""
    first = scenario_messages()[0]
    writes = _processed([first, first], {})
    totals = [
        orjson.loads(value)
        for key, value in writes.records
        if value is not None and orjson.loads(key).startswith(f"{records.TOTALS}{records.SEP}")
    ]
    assert totals and all(t["duplicates"] == sum(t["events"].values()) / 2 for t in totals)


def test_the_memory_store_is_read_and_written_directly(table: Any) -> None:
    data = local_store(table)
    assert type(data) is dict
    RunWrites(data, partition=0)["k"] = {"v": 1}
    assert table.data["k"] == {"v": 1}


def test_the_batch_size_follows_fausts_environment_variable() -> None:
    assert max_batch_bytes({"PRODUCER_MAX_BATCH_SIZE": "1"}) == 1
    assert max_batch_bytes({}) > 16_384


def test_encode_is_fausts_json_codec() -> None:
    from faust.serializers import codecs

    for value in ({"a": math.pi, "b": "ü"}, "k\x1fé", [1, 2.5, None]):
        assert encode(value) == codecs.dumps("json", value)
