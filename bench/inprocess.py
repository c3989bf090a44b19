"""The worker's pure hot path in one process, without Kafka or Faust: CPU µs per event.

    PYTHONPATH=. python -m bench.inprocess [events] [repeats]

Stage one: ``validate_batch`` (decode, validate, pseudonymise) over one-event messages.
Stage two: ``MessageProcessor`` on a store that serialises every written value as Faust's JSON
codec would for the changelog, fed three ways: 1000-event messages per routing key (a drain
of a pre-filled topic); the messages stage one really forwards (its 2000-event batches grouped
by routing key: a few events each); and those in batches of 200 messages per partition, as the
``aggregate`` agent takes them. Each figure is the best of ``repeats`` runs of process CPU
time, with the garbage collector on (as in the worker) and off (the code alone).
"""

from __future__ import annotations

import gc
import sys
import time
import zlib
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson

from bench.events import Traffic, event_chunks
from callpulse.pseudonym import DEV_KEY, pseudonymiser_for_key
from stream.ingress import validate_batch
from stream.kpi.config import CentreConfig
from stream.processor import Message, MessageProcessor, Retention
from stream.validation import EventValidator
from stream.worker import now_us

PARTITIONS = 8
INGRESS_BATCH = 2000
MESSAGE_EVENTS = 1000
BATCH_MESSAGES = 200
# What faust.utils.json.dumps passes orjson: the changelog's value encoding.
FAUST_JSON = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z

Event = dict[str, Any]
Routed = list[tuple[int, int, list[Event]]]  # (partition, offset, events)


class ChangelogStore(dict[str, Any]):
    """A dict that serialises each written value, as a table write does for its changelog."""

    writes = 0
    written_bytes = 0

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.writes += 1
        self.written_bytes += len(key) + len(orjson.dumps(value, option=FAUST_JSON))


def cpu_us_per_event(run: Callable[[], object], events: int, repeats: int) -> tuple[float, float]:
    """Best CPU µs per event with the collector on, then off."""
    best: list[float] = []
    for enabled in (True, False):
        times = []
        for _ in range(repeats):
            gc.collect()
            if not enabled:
                gc.disable()
            started = time.process_time()
            run()
            times.append(time.process_time() - started)
            gc.enable()
        best.append(min(times) / events * 1e6)
    return best[0], best[1]


def routed(raw: list[bytes], validator: EventValidator, per_message: int | None) -> Routed:
    """Stage one's output as stage two's messages: by routing key, on the key's partition."""
    pseudonymiser = pseudonymiser_for_key(DEV_KEY)
    offsets = [0] * PARTITIONS
    messages: Routed = []
    step = len(raw) if per_message else INGRESS_BATCH
    for start in range(0, len(raw), step):
        grouped, _ = validate_batch(validator, raw[start : start + step], pseudonymiser)
        for key, events in grouped.items():
            partition = zlib.crc32(key.encode()) % PARTITIONS
            size = per_message or len(events)
            for first in range(0, len(events), size):
                messages.append((partition, offsets[partition], events[first : first + size]))
                offsets[partition] += 1
    return messages


def run_stage_two(messages: Routed, batch_messages: int, at_us: int) -> ChangelogStore:
    processor = MessageProcessor(CentreConfig(), Retention())
    store = ChangelogStore()
    for start in range(0, len(messages), batch_messages):
        by_partition: dict[int, list[Message]] = {}
        for partition, offset, events in messages[start : start + batch_messages]:
            by_partition.setdefault(partition, []).append((offset, events))
        for partition, batch in by_partition.items():
            processor.process_batch(store, batch, partition=partition, now_us=at_us)
    return store


def main(argv: list[str]) -> None:
    events = int(argv[0]) if argv else 100_000
    repeats = int(argv[1]) if len(argv) > 1 else 3
    # Stage one checks event times against the clock: the traffic ends a minute ago.
    at_us = now_us()
    traffic = Traffic(events=events, start_us=at_us - 3600 * 10**6, end_us=at_us - 60 * 10**6)
    raw = [orjson.dumps(event) for chunk in event_chunks(traffic) for event in chunk]
    validator = EventValidator(max_past_s=8 * 86400, max_future_s=300)
    pseudonymiser = pseudonymiser_for_key(DEV_KEY)
    on, off = cpu_us_per_event(
        lambda: validate_batch(validator, raw, pseudonymiser), events, repeats
    )
    print(f"stage 1 (decode + validate + pseudonymise): {on:.1f} us/event ({off:.1f} without gc)")
    feeds = {
        f"messages of up to {MESSAGE_EVENTS} events": (routed(raw, validator, MESSAGE_EVENTS), 1),
        "stage one's messages": (routed(raw, validator, None), 1),
        f"stage one's messages, {BATCH_MESSAGES} a batch": (
            routed(raw, validator, None),
            BATCH_MESSAGES,
        ),
    }
    for name, (messages, batch) in feeds.items():
        run = partial(run_stage_two, messages, batch, at_us)
        on, off = cpu_us_per_event(run, events, repeats)
        store = run()
        print(
            f"stage 2, {name} ({events / len(messages):.1f} events each): {on:.1f} us/event "
            f"({off:.1f} without gc), {store.writes / events:.2f} writes and "
            f"{store.written_bytes / events:.0f} changelog bytes per event"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
