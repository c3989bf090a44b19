"""Kafka clients built from settings, and the topics callpulse needs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from callpulse.settings import Settings

log = logging.getLogger(__name__)


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection options shared by every aiokafka client."""
    return {"bootstrap_servers": settings.kafka_bootstrap}


def producer_acks(settings: Settings) -> int | str:
    return "all" if settings.kafka_acks == "all" else int(settings.kafka_acks)


async def ensure_topics(settings: Settings, *, attempts: int = 30) -> None:
    """Create the input and dead-letter topics when missing (Faust creates its own)."""
    wanted = [
        NewTopic(settings.events_topic, settings.partitions, settings.replication_factor),
        NewTopic(settings.dlq_topic, settings.partitions, settings.replication_factor),
    ]
    for attempt in range(attempts):
        admin = AIOKafkaAdminClient(**client_kwargs(settings))
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [topic for topic in wanted if topic.name not in existing]
            if missing:
                await admin.create_topics(missing)
            return
        except TopicAlreadyExistsError:
            return
        except KafkaError as exc:
            log.info("waiting for Kafka at %s (%s)", settings.kafka_bootstrap, exc)
            await asyncio.sleep(min(0.2 * (attempt + 1), 2.0))
        finally:
            await admin.close()
    raise RuntimeError(f"Kafka at {settings.kafka_bootstrap} did not answer")
