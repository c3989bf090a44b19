"""Faust's Kafka consumer with a fetch wait of our choosing.

Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting to change it.
Apache Kafka answers a fetch as soon as data arrives, so there it only bounds idle polls; the
embedded broker holds every fetch for the whole wait, which made stage two's latency up to
1.5 s a message there. ``Settings.kafka_fetch_max_wait_ms`` applies to every consumer instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_kafka
from faust.types import TransportT


class _ConsumerThread(faust_kafka.AIOKafkaConsumerThread):
    fetch_max_wait_ms = 500

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Read by the consumer's fetcher when it starts, which comes after this.
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer


def _transport(fetch_max_wait_ms: int) -> type[faust_kafka.Transport]:
    thread = type("ConsumerThread", (_ConsumerThread,), {"fetch_max_wait_ms": fetch_max_wait_ms})

    class FetchWaitConsumer(faust_kafka.Consumer):
        def _new_consumer_thread(self) -> faust_kafka.AIOKafkaConsumerThread:
            return thread(self, loop=self.loop, beacon=self.beacon)  # type: ignore[no-any-return]

    class Transport(faust_kafka.Transport):
        Consumer = FetchWaitConsumer

    return Transport


def aiokafka_client(consumer: Any) -> aiokafka.AIOKafkaConsumer:
    """The aiokafka consumer inside Faust's (it lives in Faust's consumer thread: read only)."""
    return consumer._thread._ensure_consumer()


def partition_state(client: aiokafka.AIOKafkaConsumer, tp: Any) -> Any:
    """aiokafka's state of one assigned partition: ``position`` (when
    ``has_valid_position``) and ``paused``."""
    return client._subscription.subscription.assignment.state_value(tp)


class FetchWaitApp(faust.App):
    """A Faust app whose consumer waits at most ``fetch_max_wait_ms`` for a fetch."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        self._fetch_max_wait_ms = fetch_max_wait_ms
        # Called as a rebalance starts, before Faust revokes anything (the app's signals come
        # after its streams were drained).
        self.rebalance_start_hooks: list[Callable[[], None]] = []
        super().__init__(*args, **kwargs)

    def on_rebalance_start(self) -> None:
        for hook in self.rebalance_start_hooks:
            hook()
        super().on_rebalance_start()

    def _new_transport(self) -> TransportT:
        transport_class = _transport(self._fetch_max_wait_ms)
        return transport_class(self.conf.broker_consumer, self)
