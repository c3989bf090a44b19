"""The alerts topic and its dead-letter topic: created when missing, written by one producer."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from callpulse.kafka import client_kwargs, producer_acks
from callpulse.settings import Settings

log = logging.getLogger(__name__)


class AlertProducer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        await self._ensure_topics()
        # aiokafka clients bind to the running loop: create them inside it.
        producer = AIOKafkaProducer(
            **client_kwargs(self.settings), acks=producer_acks(self.settings)
        )
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        if self._producer is None:
            raise RuntimeError("alert producer not started")
        await self._producer.send_and_wait(topic, value, key=key)

    async def _ensure_topics(self) -> None:
        """One partition each: transitions are few, and one total order is simplest to read."""
        names = (self.settings.alerts_topic, self.settings.alerts_dlq_topic)
        admin = AIOKafkaAdminClient(**client_kwargs(self.settings))
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(name, 1, self.settings.replication_factor)
                for name in names
                if name not in existing
            ]
            if missing:
                await admin.create_topics(missing)
        except TopicAlreadyExistsError:
            pass  # another replica made it meanwhile
        except KafkaError as exc:  # the producer may still write where topics auto-create
            log.warning("alert topics not created: %s", exc)
        finally:
            await admin.close()
