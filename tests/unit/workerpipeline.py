"""The worker's write path on a dict store, as a test harness for delivery properties.

``Pipeline.deliver`` runs one input message through what ``stream.worker`` runs: decode,
validate (with the worker's tolerances), pseudonymise, route by ``routing_key``, a JSON round
trip (the routed topic) and ``MessageProcessor`` with per-partition offsets. A ``Delivery``
says how a history reaches it: delays, copies, PBX resends, message sizes, partitions.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from api.readmodel import ReadModel
from api.views import ModelReader
from callpulse.pseudonym import DEV_KEY, pseudonymiser_for_key
from callpulse.settings import Settings
from stream import records
from stream.decode import Rejection, decode_message
from stream.kpi.accumulator import KpiAccumulator
from stream.kpi.config import CentreConfig
from stream.kpi.timeutil import BUCKET_US, US_PER_S, parse_ts_us
from stream.processor import MessageProcessor, Retention
from stream.records import OFFSET_FIELD, PARTITION_FIELD
from stream.validation import TOO_OLD, EventValidator

T0_US = parse_ts_us("2024-03-01T10:00:00Z")  # a bucket boundary
MINUTE_US = BUCKET_US
QUEUES = ("sales", "support")
# The worker's own tolerances: events older than the retention or further ahead than
# max_future_s are refused (CALLPULSE_RETENTION_S, CALLPULSE_MAX_FUTURE_S).
WORKER_SETTINGS = Settings()
MAX_PAST_US = round(WORKER_SETTINGS.retention_s * US_PER_S)
MAX_FUTURE_US = round(WORKER_SETTINGS.max_future_s * US_PER_S)
VALIDATOR = EventValidator(
    max_past_s=WORKER_SETTINGS.retention_s, max_future_s=WORKER_SETTINGS.max_future_s
)
RETENTION = Retention(  # as stream.worker builds it
    buckets_s=WORKER_SETTINGS.retention_s,
    call_state_s=WORKER_SETTINGS.call_state_ttl_s,
    max_call_wait_s=WORKER_SETTINGS.max_call_wait_s,
)
PSEUDONYMISE = pseudonymiser_for_key(DEV_KEY)
CENTRE = CentreConfig()  # the reference's defaults: threshold 20 s, short abandon 5 s
# Read-model records keyed by the partition that wrote them: only their sum must agree.
PER_PARTITION = frozenset({records.CENTRE_BUCKET, records.CENTRE_TOTALS})
# The types whose second copy under a new event_id (a PBX resend) must change nothing.
RESENDABLE = ("call.offered", "call.answered", "call.abandoned", "call.exited", "call.resolved")

Event = dict[str, Any]
Store = dict[str, Any]


# -- delivery -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """How one history reaches the worker: every choice drawn by hypothesis."""

    delays_ms: Sequence[int]  # per event: how long after its ts it arrives
    copies: Sequence[int]  # per event: extra deliveries (same id, same content)
    resends: Sequence[bool]  # per event: also resent by the PBX under a new id
    message_sizes: Sequence[int]  # events per input message, cycled
    partitions: int
    salt: int  # which routing key lands on which partition
    strays: Sequence[tuple[str, int]] = ()  # (reason it must get, µs beyond the tolerance)


@dataclass
class Pipeline:
    """The worker's two stages on a dict store, with the offsets and partitions Kafka gives."""

    partitions: int = 1
    salt: int = 0
    store: Store = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)
    processor: MessageProcessor = field(default_factory=lambda: MessageProcessor(CENTRE, RETENTION))
    offsets: dict[int, int] = field(default_factory=dict)

    def partition_of(self, routing: str) -> int:
        return random.Random(f"{self.salt}:{routing}").randrange(self.partitions)

    def deliver(self, events: Sequence[Event], *, now_us: int, as_array: bool = True) -> None:
        """One input message: decode, validate, route, then aggregate what was routed."""
        value = orjson.dumps(list(events) if as_array or len(events) != 1 else events[0])
        candidates, rejected = decode_message(value)
        self.rejections.extend(rejected)
        routed: dict[str, list[Event]] = {}
        for _, candidate in candidates:
            result = VALIDATOR.validate(candidate, now_us=now_us)
            if isinstance(result, Rejection):
                self.rejections.append(result)
            else:
                routed.setdefault(records.routing_key(result), []).append(
                    PSEUDONYMISE.event(result)
                )
        for routing, group in routed.items():
            partition = self.partition_of(routing)
            offset = self.offsets.get(partition, 0)
            self.offsets[partition] = offset + 1
            # The routed topic carries JSON: what stage two reads is a fresh copy.
            forwarded = orjson.loads(orjson.dumps(group))
            self.processor.process(
                self.store, forwarded, offset=offset, partition=partition, now_us=now_us
            )


def arrivals(history: Sequence[Event], delivery: Delivery) -> list[tuple[int, int, Event]]:
    """(arrival µs, tie-break, event) for every copy, in arrival order."""
    out: list[tuple[int, int, Event]] = []
    for index, event in enumerate(history):
        ts_us = parse_ts_us(event["ts"])
        arrive_us = ts_us + delivery.delays_ms[index] * 1000
        for copy_number in range(1 + delivery.copies[index]):
            # Each copy borrows another event's drawn delay: anywhere within the same bound,
            # before or after the original.
            delay_ms = delivery.delays_ms[(index + copy_number * 7919) % len(history)]
            out.append((ts_us + delay_ms * 1000, len(out), dict(event)))
        if delivery.resends[index] and event["type"] in RESENDABLE:
            resent = {**event, "event_id": f"{event['event_id']}-resent"}
            out.append((arrive_us + 1, len(out), resent))
    out.sort(key=lambda item: item[:2])
    return out


def strays(delivery: Delivery, first_arrival_us: int) -> list[tuple[str, Event]]:
    """Events far outside the tolerance: (expected reason, event). Own call ids, so any one
    accepted would change the figures."""
    made = []
    for number, (kind, beyond_us) in enumerate(delivery.strays):
        if kind == TOO_OLD:
            ts_us = first_arrival_us - MAX_PAST_US - beyond_us
        else:
            ts_us = first_arrival_us + MAX_FUTURE_US + beyond_us
        event = {"event_id": f"stray-{number}", "type": "call.offered", "ts": ts_us / US_PER_S,
                 "queue": "sales", "call_id": f"stray-{number}"}  # fmt: skip
        made.append((kind, event))
    return made


def run_delivered(history: Sequence[Event], delivery: Delivery) -> Pipeline:
    pipeline = Pipeline(delivery.partitions, delivery.salt)
    pending = arrivals(history, delivery)
    first_us = pending[0][0] if pending else T0_US
    stray_events = [event for _, event in strays(delivery, first_us)]
    if stray_events:  # their own message, received when the first event arrives
        pipeline.deliver(stray_events, now_us=first_us)
    batch: list[Event] = []
    sizes = list(delivery.message_sizes)
    number = 0
    for arrive_us, _, event in pending:
        batch.append(event)
        if len(batch) >= sizes[number % len(sizes)]:
            pipeline.deliver(batch, now_us=arrive_us, as_array=number % 2 == 0)
            batch, number = [], number + 1
    if batch:
        pipeline.deliver(batch, now_us=pending[-1][0] if pending else first_us)
    return pipeline


def run_clean(history: Sequence[Event]) -> Pipeline:
    pipeline = Pipeline()
    for event in history:
        pipeline.deliver([event], now_us=parse_ts_us(event["ts"]), as_array=False)
    return pipeline


# -- comparing -----------------------------------------------------------------------------


def compared_records(store: Store) -> Store:
    """The read-model records, without the worker's bookkeeping (offset fence, partition).

    Of ``t`` only the accumulator must agree: its event and duplicate counters count
    deliveries, not figures. Records keyed by partition are summed over partitions.
    """
    out: Store = {}
    for record_key, value in store.items():
        family, *parts = records.split_key(record_key)
        if family not in records.READ_MODEL_FAMILIES:
            continue
        if family == records.TOTALS:
            out[record_key] = value.get("acc")  # only a queue's totals hold figures
        elif family in PER_PARTITION:
            summed = records.key(family, *parts[1:])
            acc = KpiAccumulator.from_json(out.get(summed, KpiAccumulator().to_json()))
            acc.merge(KpiAccumulator.from_json(value["acc"]))
            out[summed] = acc.to_json()
        else:
            out[record_key] = {
                k: v for k, v in value.items() if k not in (OFFSET_FIELD, PARTITION_FIELD)
            }
    return out


def served_model(store: Store) -> ModelReader:
    """The API's view of the store, fed through the JSON the changelog carries."""
    model = ReadModel()
    for record_key, value in store.items():
        model.apply(record_key, orjson.loads(orjson.dumps(value)))
    return ModelReader(model, CENTRE)
