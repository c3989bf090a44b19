"""The Faust worker: thin glue around ``stream.decode``, ``stream.validation`` and the processor.

Stage one (``validate``) reads the input topic, whatever its keys, validates every event, sends
the invalid ones to the dead-letter topic and forwards the valid ones, batched, keyed by their
routing key (``stream.records.routing_key``). Stage two (``aggregate``) then finds every event
that touches a record on the partition that owns the record, so dedupe and call state are right
with any number of workers, whatever key the producers chose.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any, cast

import faust
import orjson

from callpulse.kafka import faust_credentials, producer_acks
from callpulse.pseudonym import DEV_KEY, Pseudonymiser, pseudonymiser_for, pseudonymiser_for_key
from callpulse.settings import Settings
from stream.decode import Rejection, decode_message
from stream.kpi.config import CentreConfig
from stream.kpi.timeutil import US_PER_S, us_to_rfc3339
from stream.processor import MessageProcessor, Retention
from stream.records import routing_key
from stream.validation import EventValidator

log = logging.getLogger(__name__)

# Events per forwarded message: big enough to amortise Faust's per-message cost.
FORWARD_CHUNK = 1000


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
    source = app.topic(settings.events_topic, key_serializer="raw", value_serializer="raw")
    routed = app.topic(
        settings.routed_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
        internal=True,
    )
    dlq = app.topic(settings.dlq_topic, key_serializer="raw", value_serializer="raw")
    state = app.Table(settings.state_table, default=None, partitions=settings.partitions)
    validator = EventValidator(max_past_s=settings.retention_s, max_future_s=settings.max_future_s)
    pseudonymiser = pseudonymiser_for(settings)
    processor = MessageProcessor(
        centre,
        Retention(
            buckets_s=settings.retention_s,
            call_state_s=settings.call_state_ttl_s,
            max_call_wait_s=settings.max_call_wait_s,
        ),
    )

    @app.agent(source, name="validate")
    async def validate(stream: faust.StreamT[bytes]) -> None:
        # take_events lives on the concrete Stream; StreamT (what agents get) omits it.
        batches = cast(faust.Stream[bytes], stream).take_events(
            settings.ingest_batch_max, within=settings.ingest_batch_within_s
        )
        async for batch in batches:
            routed_events, rejections = _validate_batch(
                validator, [e.value for e in batch], pseudonymiser
            )
            for key, events in routed_events.items():
                for start in range(0, len(events), FORWARD_CHUNK):
                    await routed.send(
                        key=key.encode(),
                        force=True,
                        value=orjson.dumps(events[start : start + FORWARD_CHUNK]),
                    )
            received_at = us_to_rfc3339(now_us())
            for rejection in rejections:
                await dlq.send(
                    value=orjson.dumps(rejection.to_dlq(source="worker", received_at=received_at)),
                    force=True,
                )

    @app.agent(routed, name="aggregate")
    async def aggregate(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            events = orjson.loads(event.value)
            message = event.message
            processor.process(
                state, events, offset=message.offset, partition=message.partition, now_us=now_us()
            )

    return app


def _validate_batch(
    validator: EventValidator, values: list[Any], pseudonymiser: Pseudonymiser | None = None
) -> tuple[dict[str, list[dict[str, Any]]], list[Rejection]]:
    """Valid events grouped by routing key, in arrival order; and the rejections.

    Callers are pseudonymised in both (producers may write raw ones to the input topic);
    without a pseudonymiser, the public development key's.
    """
    pseudonymise = pseudonymiser or pseudonymiser_for_key(DEV_KEY)
    grouped: dict[str, list[dict[str, Any]]] = {}
    rejections: list[Rejection] = []
    received_us = now_us()
    for value in values:
        candidates, bad = decode_message(value)
        rejections.extend(pseudonymise.rejection(r) for r in bad)
        for index, candidate in candidates:
            result = validator.validate(candidate, now_us=received_us)
            if isinstance(result, Rejection):
                rejections.append(pseudonymise.rejection(replace(result, index=index)))
            else:
                grouped.setdefault(routing_key(result), []).append(pseudonymise.event(result))
    return grouped, rejections


def run_worker(settings: Settings, centre: CentreConfig) -> None:
    """Run until SIGINT/SIGTERM (Faust's own worker loop)."""
    from faust.worker import Worker

    app = create_worker_app(settings, centre)
    Worker(app, loglevel=settings.log_level).execute_from_commandline()
