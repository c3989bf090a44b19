"""Kafka clients built from settings, and the topics callpulse needs."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from callpulse.settings import Settings

log = logging.getLogger(__name__)


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection options shared by every aiokafka client, security included."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        kwargs["sasl_plain_password"] = password.get_secret_value() if password else None
    return kwargs


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS for SSL and SASL_SSL: the system CAs unless a CA file is named; optional client cert."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    context = ssl.create_default_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    )
    context.check_hostname = settings.kafka_ssl_check_hostname
    if settings.kafka_ssl_certfile is not None:
        key_password = settings.kafka_ssl_key_password
        context.load_cert_chain(
            settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
            password=key_password.get_secret_value() if key_password else None,
        )
    return context


def faust_credentials(settings: Settings) -> Any:
    """The same security for Faust's own clients (``broker_credentials``); None for PLAINTEXT."""
    import faust  # the worker's dependency: the API never imports Faust

    protocol = settings.kafka_security_protocol
    context = ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    if protocol.startswith("SASL_"):
        # Faust picks SASL_SSL exactly when it is given a TLS context.
        password = settings.kafka_sasl_password
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=password.get_secret_value() if password else None,
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    return None


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
