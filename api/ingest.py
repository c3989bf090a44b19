"""Publishing accepted events to the input topic, and refused ones to the dead-letter topic."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from callpulse.kafka import client_kwargs, producer_acks
from callpulse.settings import Settings
from stream.decode import Rejection
from stream.kpi.timeutil import US_PER_S, us_to_rfc3339

MESSAGE_EVENTS_MAX = 500  # events per Kafka message: batches are cheap for the worker


class EventPublisher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # aiokafka clients bind to the running loop: create them inside it.
        self._producer = AIOKafkaProducer(
            **client_kwargs(self.settings),
            acks=producer_acks(self.settings),
            linger_ms=2,
            max_request_size=16 * 1024 * 1024,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("publisher not started")
        return self._producer

    async def publish(
        self, events: Sequence[dict[str, Any]], rejections: Sequence[Rejection], *, now_s: float
    ) -> None:
        """Send and wait for the broker's ack: 202 means the events are in Kafka."""
        pending = []
        for queue_key, group in _by_queue(events).items():
            for start in range(0, len(group), MESSAGE_EVENTS_MAX):
                value = orjson.dumps(group[start : start + MESSAGE_EVENTS_MAX])
                pending.append(
                    await self.producer.send(self.settings.events_topic, value=value, key=queue_key)
                )
        received_at = us_to_rfc3339(int(now_s * US_PER_S))
        for rejection in rejections:
            value = orjson.dumps(rejection.to_dlq(source="api", received_at=received_at))
            pending.append(await self.producer.send(self.settings.dlq_topic, value=value))
        await asyncio.gather(*pending)


def _by_queue(events: Sequence[dict[str, Any]]) -> dict[bytes | None, list[dict[str, Any]]]:
    """Group by queue, keeping arrival order within each group (keys only spread load)."""
    grouped: dict[bytes | None, list[dict[str, Any]]] = {}
    for event in events:
        queue = event.get("queue")
        grouped.setdefault(queue.encode() if isinstance(queue, str) else None, []).append(event)
    return grouped
