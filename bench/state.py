"""A worker's state built in-process, and written out as the changelog a worker would leave.

The same code path as the worker's two stages, minus Kafka: validate and pseudonymise (stage
one), group by routing key into messages, ``MessageProcessor.process`` into a dict (stage two),
then the retention expiry the worker runs every minute. The compacted changelog of that dict is
what an API replica (or a recovering worker) reads, so scenarios 3 and 4 can build 200 queues
with a day of history in seconds instead of replaying it through Kafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from bench import kafkaio
from bench.events import Event
from callpulse.pseudonym import Pseudonymiser
from stream.decode import Rejection
from stream.expiry import expire_candidates, expiry_candidates
from stream.kpi.config import CentreConfig
from stream.kpi.timeutil import US_PER_S, parse_ts_us
from stream.processor import MessageProcessor, Retention
from stream.records import routing_key
from stream.validation import EventValidator

Store = dict[str, Any]
Change = tuple[int, bytes, bytes | None]
FORWARD_CHUNK = 1000  # events per routed message, as stream.worker forwards them


class RecordingStore(dict[str, Any]):
    """A dict that remembers which keys were written or deleted since ``take_written``."""

    def __init__(self) -> None:
        super().__init__()
        self.written: set[str] = set()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.written.add(key)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.written.add(key)

    def take_written(self) -> set[str]:
        written, self.written = self.written, set()
        return written


@dataclass
class BuiltState:
    store: RecordingStore = field(default_factory=RecordingStore)
    offsets: dict[int, int] = field(default_factory=dict)  # next offset per partition
    events: int = 0
    rejected: int = 0


class StateBuilder:
    """``live``: each batch is processed at its last event's time plus a second, as a worker
    keeping up would, so the processor's own expiry (hourly here, every minute in the worker)
    drops call states and dedupe marks as they age. Otherwise every batch is processed at the
    ``now_us`` given, as in a replay."""

    def __init__(self, partitions: int, pseudonym_key: str, *, live: bool = False) -> None:
        self.partitions = partitions
        self.live = live
        # The worker expires every minute; hourly keeps the build minutes long, not hours, and
        # ``expire`` at the end brings the state to exactly what a worker holds.
        self.retention = Retention(expiry_every_s=3600.0) if live else Retention()
        self.validator = EventValidator(max_past_s=self.retention.buckets_s, max_future_s=600)
        self.pseudonymiser = Pseudonymiser(pseudonym_key)
        self.processor = MessageProcessor(CentreConfig(), self.retention)
        self.state = BuiltState()

    def add(self, events: Sequence[Event], now_us: int) -> None:
        """One stage-one batch: validate, group by routing key, process each group's chunks."""
        if self.live and events:
            now_us = min(now_us, max(parse_ts_us(e["ts"]) for e in events) + US_PER_S)
        grouped: dict[str, list[Event]] = {}
        for candidate in events:
            result = self.validator.validate(candidate, now_us=now_us)
            if isinstance(result, Rejection):
                self.state.rejected += 1
                continue
            grouped.setdefault(routing_key(result), []).append(self.pseudonymiser.event(result))
        for key, group in grouped.items():
            partition = kafkaio.partition_for(key.encode(), self.partitions, 0)
            for start in range(0, len(group), FORWARD_CHUNK):
                offset = self.state.offsets.get(partition, 0)
                self.processor.process(
                    self.state.store,
                    group[start : start + FORWARD_CHUNK],
                    offset=offset,
                    partition=partition,
                    now_us=now_us,
                )
                self.state.offsets[partition] = offset + 1
                self.state.events += len(group[start : start + FORWARD_CHUNK])

    def expire(self, now_us: int) -> None:
        """What the worker's per-minute expiry leaves: the steady state, not the whole day."""
        # One walk for every partition, as the worker's expiry does.
        candidates = expiry_candidates(self.state.store, now_us, self.retention)
        for partition in range(self.partitions):
            offset = self.state.offsets.get(partition, 0)
            expire_candidates(
                self.state.store,
                partition,
                offset,
                now_us,
                self.retention,
                candidates.get(partition, ()),
            )


def changelog_messages(
    store: Store, keys: Iterable[str] | None = None
) -> Iterator[tuple[int, bytes, bytes | None]]:
    """(partition, key, value) of the changelog, JSON as Faust writes it; None: deleted."""
    for record_key in store if keys is None else keys:
        value = store.get(record_key)
        partition = value.get("_p", 0) if isinstance(value, dict) else 0
        yield partition, orjson.dumps(record_key), None if value is None else orjson.dumps(value)


async def write_changelog(
    client: AIOKafkaProducer, topic: str, partitions: int, messages: Iterable[Change]
) -> int:
    filler = kafkaio.Filler(client, topic, partitions)
    for partition, key, value in messages:
        await filler.add_to(partition, key, value)
    await filler.flush()
    return filler.messages


async def _publish(bootstrap: str, topic: str, partitions: int, store: Store) -> int:
    await kafkaio.create_topic(bootstrap, topic, partitions)
    client = kafkaio.producer(bootstrap)
    await client.start()
    try:
        return await write_changelog(client, topic, partitions, changelog_messages(store))
    finally:
        await client.stop()


def publish(bootstrap: str, topic: str, partitions: int, store: Store) -> int:
    """The whole store as a compacted changelog topic (created with ``partitions``)."""
    return asyncio.run(_publish(bootstrap, topic, partitions, store))
