"""The worker's pure hot path in one process, without Kafka or Faust: CPU µs per event.

    PYTHONPATH=. python -m bench.inprocess [events] [repeats]

Stage one: ``validate_batch`` (decode, validate, pseudonymise) over one-event messages.
Stage two: ``MessageProcessor`` on the worker's ``RunWrites`` (a dict for the table's local
store; each run's changelog records encoded and kept until the run is done, as the worker keeps
them until they are sent), fed four ways: 1000-event messages per routing key; what stage
one forwarded before it packed by partition (its 2000-event batches grouped by routing key: a
few events each), alone and 200 messages a batch; and what it forwards now (the same batches
packed by the routing key's partition: hundreds of events each), 200 messages a batch as the
``aggregate`` agent takes them. Each figure is the best of ``repeats`` runs of process CPU
time, with CPython's default collector, with the worker's (``stream.worker.GC_THRESHOLDS``,
everything alive before the run frozen) and with none (the code alone).
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson

from bench.events import Traffic, event_chunks
from callpulse.pseudonym import DEV_KEY, pseudonymiser_for_key
from stream.changelog import ChangelogRecord, RunWrites, encode
from stream.ingress import FORWARD_CHUNK, KeyPartitions, validate_batch
from stream.kpi.config import CentreConfig
from stream.processor import Message, MessageProcessor, Retention
from stream.records import SEP, routing_key
from stream.validation import EventValidator
from stream.worker import GC_THRESHOLDS, now_us

PARTITIONS = 8
INGRESS_BATCH = 2000
MESSAGE_EVENTS = 1000
BATCH_MESSAGES = 200
Event = dict[str, Any]
Routed = list[tuple[int, int, list[Event]]]  # (partition, offset, events)


@dataclass(slots=True)
class ChangelogCount:
    """The changelog records stage two's runs produced, and their bytes (keys and values),
    in all and per record family (``stream.records``)."""

    per_family: bool = False  # off while timed: the split costs more than the sum
    writes: int = 0
    written_bytes: int = 0
    families: dict[str, list[int]] = field(default_factory=dict)  # family -> [writes, bytes]

    def add(self, records: list[ChangelogRecord]) -> None:
        self.writes += len(records)
        if not self.per_family:
            self.written_bytes += sum(len(k) + len(v or b"") for k, v in records)
            return
        for record_key, value in records:
            size = len(record_key) + len(value or b"")
            self.written_bytes += size
            # A key is a JSON string: '"family\u001f...'.
            family = record_key[1 : record_key.find(_ENCODED_SEP)].decode()
            counts = self.families.setdefault(family, [0, 0])
            counts[0] += 1
            counts[1] += size

    def by_family(self, events: int) -> str:
        ranked = sorted(self.families.items(), key=lambda item: -item[1][1])
        return ", ".join(
            f"{family} {writes / events:.3f} writes {size / events:.1f} B"
            for family, (writes, size) in ranked
        )


_ENCODED_SEP = encode(SEP)[1:-1]


GC_MODES = ("default gc", "worker gc", "no gc")


@contextmanager
def collector(mode: str) -> Iterator[None]:
    """The collector as CPython sets it, as the worker sets it, or off."""
    default = gc.get_threshold()
    gc.collect()
    if mode == "worker gc":
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
    elif mode == "no gc":
        gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.set_threshold(*default)
        gc.unfreeze()


def cpu_us_per_event(run: Callable[[], object], events: int, repeats: int) -> dict[str, float]:
    """Best CPU µs per event in each of GC_MODES."""
    best: dict[str, float] = {}
    for mode in GC_MODES:
        times = []
        for _ in range(repeats):
            with collector(mode):
                started = time.process_time()
                run()
                times.append(time.process_time() - started)
        best[mode] = min(times) / events * 1e6
    return best


def show(figures: dict[str, float]) -> str:
    return ", ".join(f"{us:.1f} us/event ({mode})" for mode, us in figures.items())


def routed(raw: list[bytes], validator: EventValidator, step: int, per_key: int | None) -> Routed:
    """Stage one's output as stage two's messages, on the routing key's partition, from input
    batches of ``step`` messages: with ``per_key``, messages of one routing key (up to
    ``per_key`` events) as before packing; otherwise packed by partition as stage one does."""
    pseudonymiser = pseudonymiser_for_key(DEV_KEY)
    partitions = KeyPartitions(range(PARTITIONS))
    offsets = [0] * PARTITIONS
    messages: Routed = []

    def send(partition: int, events: list[Event], size: int) -> None:
        for first in range(0, len(events), size):
            messages.append((partition, offsets[partition], events[first : first + size]))
            offsets[partition] += 1

    for start in range(0, len(raw), step):
        batch, _ = validate_batch(
            validator, raw[start : start + step], pseudonymiser, partitions=partitions
        )
        for partition, events in batch.items():
            if not per_key:
                send(partition, events, FORWARD_CHUNK)
                continue
            by_key: dict[str, list[Event]] = {}
            for event in events:
                by_key.setdefault(routing_key(event), []).append(event)
            for keyed in by_key.values():
                send(partition, keyed, per_key)
    return messages


def run_stage_two(
    messages: Routed, batch_messages: int, at_us: int, per_family: bool = False
) -> ChangelogCount:
    processor = MessageProcessor(CentreConfig(), Retention())
    data: dict[str, Any] = {}
    count = ChangelogCount(per_family)
    for start in range(0, len(messages), batch_messages):
        by_partition: dict[int, list[Message]] = {}
        for partition, offset, events in messages[start : start + batch_messages]:
            by_partition.setdefault(partition, []).append((offset, events))
        # Each partition's run keeps its records until all of them are done, as the worker
        # keeps them until they are sent.
        runs = [RunWrites(data, partition) for partition in by_partition]
        for writes, batch in zip(runs, by_partition.values(), strict=True):
            processor.process_batch(writes, batch, partition=writes.partition, now_us=at_us)
        for writes in runs:
            count.add(writes.records)
    return count


def main(argv: list[str]) -> None:
    events = int(argv[0]) if argv else 100_000
    repeats = int(argv[1]) if len(argv) > 1 else 3
    # Stage one checks event times against the clock: the traffic ends a minute ago.
    at_us = now_us()
    traffic = Traffic(events=events, start_us=at_us - 3600 * 10**6, end_us=at_us - 60 * 10**6)
    raw = [orjson.dumps(event) for chunk in event_chunks(traffic) for event in chunk]
    validator = EventValidator(max_past_s=8 * 86400, max_future_s=300)
    pseudonymiser = pseudonymiser_for_key(DEV_KEY)
    partitions = KeyPartitions(range(PARTITIONS))
    stage_one = cpu_us_per_event(
        lambda: validate_batch(validator, raw, pseudonymiser, partitions=partitions),
        events,
        repeats,
    )
    print(f"stage 1 (decode + validate + pseudonymise + partition): {show(stage_one)}")
    by_key = routed(raw, validator, len(raw), MESSAGE_EVENTS)
    before = routed(raw, validator, INGRESS_BATCH, INGRESS_BATCH)
    packed = routed(raw, validator, INGRESS_BATCH, None)
    feeds = {
        f"messages of up to {MESSAGE_EVENTS} events per routing key": (by_key, 1),
        "stage one's messages by routing key (before packing)": (before, 1),
        f"the same, {BATCH_MESSAGES} a batch": (before, BATCH_MESSAGES),
        f"stage one's messages packed by partition, {BATCH_MESSAGES} a batch": (
            packed,
            BATCH_MESSAGES,
        ),
    }
    for name, (messages, batch) in feeds.items():
        run = partial(run_stage_two, messages, batch, at_us)
        figures = cpu_us_per_event(run, events, repeats)
        store = run(per_family=True)
        print(
            f"stage 2, {name} ({events / len(messages):.1f} events each): {show(figures)}; "
            f"{store.writes / events:.2f} writes and "
            f"{store.written_bytes / events:.0f} changelog bytes per event"
        )
    print(f"  per event, by record family (the last feed): {store.by_family(events)}")


if __name__ == "__main__":
    main(sys.argv[1:])
