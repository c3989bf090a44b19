"""Stage two's CPU per event as a day's state builds up, without Kafka or Faust.

    PYTHONPATH=. python -m bench.state_growth [events]

Feeds the replay's traffic (``bench.throughput.traffic``: a day of the very large centre) to
``MessageProcessor`` on the worker's ``RunWrites``, in runs of about the worker's size per
partition, and prints the cumulative CPU µs per event every half million events. A figure that
grows with the events replayed is a cost that grows with the state (as whole agent histories
rewritten per batch did); the worker's real replay (``python -m bench replay``) adds Kafka,
Faust and stage one on top.
"""

from __future__ import annotations

import gc
import sys
import time
from typing import Any

from bench.events import event_chunks
from bench.throughput import traffic
from callpulse.heap import BatchCollector
from stream.changelog import RunWrites
from stream.ingress import KeyPartitions
from stream.kpi.config import CentreConfig
from stream.processor import Message, MessageProcessor
from stream.records import routing_key
from stream.validation import EventValidator
from stream.worker import GC_THRESHOLDS, now_us

PARTITIONS = 8
RUN_EVENTS = 10_000  # a partition's run (stream.worker.AGGREGATE_RUN_BYTES is ~10,000 events)
MESSAGE_EVENTS = 500
REPORT_EVERY = 500_000
Event = dict[str, Any]


class Growth:
    def __init__(self) -> None:
        self.processor = MessageProcessor(CentreConfig())
        self.store: dict[str, Any] = {}
        self.offsets = [0] * PARTITIONS
        self.events = 0
        self.records = 0
        self.cpu_s = 0.0
        self.collector = BatchCollector()

    def run(self, partition: int, events: list[Event]) -> None:
        messages: list[Message] = []
        for first in range(0, len(events), MESSAGE_EVENTS):
            messages.append((self.offsets[partition], events[first : first + MESSAGE_EVENTS]))
            self.offsets[partition] += 1
        started = time.process_time()
        writes = RunWrites(self.store, partition)
        self.processor.process_batch(writes, messages, partition=partition, now_us=now_us())
        self.collector.after_batch()  # as the worker does with CALLPULSE_WORKER_GC_FREEZE=true
        self.cpu_s += time.process_time() - started
        self.events += len(events)
        self.records += len(writes.records)

    def line(self) -> str:
        return (
            f"{self.events:>11,} events: {self.cpu_s / self.events * 1e6:5.1f} us/event so far, "
            f"{len(self.store):,} records held, {self.records:,} changelog records"
        )


def main(events: int) -> None:
    validator = EventValidator()
    partitions = KeyPartitions(range(PARTITIONS))
    growth = Growth()
    pending: dict[int, list[Event]] = {p: [] for p in range(PARTITIONS)}
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    reported = 0
    for chunk in event_chunks(traffic(events, 200, prefix="g-")):
        now = now_us()
        for candidate in chunk:
            event = validator.validate(candidate, now_us=now)
            assert isinstance(event, dict), event  # generated traffic is valid
            partition = partitions.of(routing_key(event))
            pending[partition].append(event)
            if len(pending[partition]) >= RUN_EVENTS:
                growth.run(partition, pending[partition])
                pending[partition] = []
        if growth.events - reported >= REPORT_EVERY:
            print(growth.line(), flush=True)
            reported = growth.events
    for partition, rest in pending.items():
        if rest:
            growth.run(partition, rest)
    print(growth.line())


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3_000_000)
