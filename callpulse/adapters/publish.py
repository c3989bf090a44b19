"""Where adapters send what they mapped: events to the input topic, refusals to the DLQ.

Events travel as the simulator's producer sends them (per-key JSON arrays, keyed by queue or
agent: ``message_batches``), after their callers are pseudonymised: no raw caller id reaches
a topic. A refused input goes to the dead-letter topic in the worker's record shape, so
``callpulse_events_invalid_total{reason}`` counts it wherever it came from.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

import orjson
from aiokafka import AIOKafkaProducer

from callpulse.adapters.core import Event, Refusal
from callpulse.kafka import client_kwargs, producer_acks
from callpulse.pseudonym import pseudonymiser_for
from callpulse.settings import Settings
from callpulse.simulator.producer import message_batches
from stream.decode import Rejection
from stream.kpi.timeutil import US_PER_S, us_to_rfc3339

MESSAGE_EVENTS_MAX = 500


class Sink(Protocol):
    async def send(
        self, events: Sequence[Event], refusals: Sequence[Refusal], *, source: str
    ) -> None:
        """Returns once the broker has every event and refusal: then a position may be saved."""


class KafkaSink:
    def __init__(self, producer: AIOKafkaProducer, settings: Settings) -> None:
        self.producer = producer
        self.settings = settings
        self.pseudonymise = pseudonymiser_for(settings)

    async def send(
        self, events: Sequence[Event], refusals: Sequence[Refusal], *, source: str
    ) -> None:
        private = [self.pseudonymise.event(dict(event)) for event in events]
        deliveries = [
            await self.producer.send(self.settings.events_topic, value=orjson.dumps(batch), key=key)
            for key, batch in message_batches(private, MESSAGE_EVENTS_MAX)
        ]
        received_at = us_to_rfc3339(int(time.time() * US_PER_S))
        for refusal in refusals:
            record = self.pseudonymise.rejection(
                Rejection(refusal.reason, refusal.detail, raw=refusal.raw, index=refusal.index)
            ).to_dlq(source=source, received_at=received_at)
            value = orjson.dumps(record)
            deliveries.append(await self.producer.send(self.settings.dlq_topic, value=value))
        await asyncio.gather(*deliveries)


@asynccontextmanager
async def kafka_sink(settings: Settings) -> AsyncIterator[KafkaSink]:
    """A started producer for the CLI; stopped (after flushing) on the way out."""
    producer = AIOKafkaProducer(
        **client_kwargs(settings),
        acks=producer_acks(settings),
        linger_ms=5,
        max_request_size=16 * 1024 * 1024,
    )
    await producer.start()
    try:
        yield KafkaSink(producer, settings)
    finally:
        await producer.stop()
