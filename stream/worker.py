"""The worker: stage one (``stream.ingress``) and the Faust app that runs stage two.

Stage one reads the input topic, whatever its keys, validates every event, sends the invalid
ones to the dead-letter topic and forwards the valid ones, batched, keyed by their routing key
(``stream.records.routing_key``). It is a plain consumer started as a service of the app (a
Faust agent costs too much per input message). Stage two (``aggregate``) then finds every event
that touches a record on the partition that owns the record, so dedupe and call state are right
with any number of workers, whatever key the producers chose.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Sequence
from typing import cast

import faust
import orjson
from faust.streams import _current_event
from faust.types import EventT

from callpulse.kafka import faust_credentials, producer_acks
from callpulse.pseudonym import pseudonymiser_for
from callpulse.settings import Settings
from stream.ingress import Ingress
from stream.kpi.config import CentreConfig
from stream.kpi.timeutil import US_PER_S
from stream.processor import MessageProcessor, Retention
from stream.validation import EventValidator

log = logging.getLogger(__name__)

# Routed messages per stage-two batch (each holds up to FORWARD_CHUNK events).
AGGREGATE_BATCH_MESSAGES = 200


def now_us() -> int:
    return int(time.time() * US_PER_S)


def create_worker_app(settings: Settings, centre: CentreConfig) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=faust_credentials(settings),
        store=settings.store,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_s,
        producer_acks=producer_acks(settings),
        consumer_auto_offset_reset="earliest",
        # The state table's changelog is JSON: the API reads it as its read model.
        key_serializer="json",
        value_serializer="json",
        web_enabled=False,
    )
    # Declared by Faust (internal) with ``partitions`` before stage one starts forwarding to it.
    routed = app.topic(
        settings.routed_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
        internal=True,
    )
    state = app.Table(settings.state_table, default=None, partitions=settings.partitions)
    processor = MessageProcessor(
        centre,
        Retention(
            buckets_s=settings.retention_s,
            call_state_s=settings.call_state_ttl_s,
            max_call_wait_s=settings.max_call_wait_s,
        ),
    )

    validator = EventValidator(max_past_s=settings.retention_s, max_future_s=settings.max_future_s)
    # Extra services start once the tables have recovered, so the routed topic exists by then.
    # Faust takes an instance as well as a class (App._prepare_subservice); its hint says class.
    app.service(Ingress(settings, validator, pseudonymiser_for(settings)))  # type: ignore[arg-type]

    @app.agent(routed, name="aggregate")
    async def aggregate(stream: faust.StreamT[bytes]) -> None:
        # Several messages per batch: each record is written once per batch, not per message
        # (MessageProcessor.process_batch keeps the offset fence per message).
        # take_events lives on the concrete Stream; StreamT (what agents get) omits it.
        batches = cast(faust.Stream[bytes], stream).take_events(
            AGGREGATE_BATCH_MESSAGES, within=settings.ingest_batch_within_s
        )
        async for batch in batches:
            for partition, events in _by_partition(batch).items():
                # A table write sends its changelog record to the partition of the current
                # event, which Faust leaves unset in a take_events batch (faust-streaming#497).
                _current_event.set(weakref.ref(events[-1]))
                messages = [(e.message.offset, orjson.loads(e.value)) for e in events]
                processor.process_batch(state, messages, partition=partition, now_us=now_us())

    return app


def _by_partition(batch: Sequence[EventT[bytes]]) -> dict[int, list[EventT[bytes]]]:
    """A take_events batch by source partition, each in offset order."""
    grouped: dict[int, list[EventT[bytes]]] = {}
    for event in batch:
        grouped.setdefault(event.message.partition, []).append(event)
    return grouped


def run_worker(settings: Settings, centre: CentreConfig) -> None:
    """Run until SIGINT/SIGTERM (Faust's own worker loop)."""
    from faust.worker import Worker

    app = create_worker_app(settings, centre)
    Worker(app, loglevel=settings.log_level).execute_from_commandline()
