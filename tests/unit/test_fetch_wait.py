"""Every consumer of the worker waits at most ``kafka_fetch_max_wait_ms`` for a fetch: Faust's
own (which hard-codes 1.5 s) as well as stage one's. On the embedded broker, which holds each
fetch for its whole wait, that wait is the pipeline's latency per hop."""

from __future__ import annotations

import gc

from callpulse.pseudonym import DEV_KEY, pseudonymiser_for_key
from callpulse.settings import Settings
from stream.ingress import Ingress
from stream.kpi.config import CentreConfig
from stream.validation import EventValidator
from stream.worker import create_worker_app

SETTINGS = Settings(kafka_fetch_max_wait_ms=37, insecure=True)


async def test_fausts_consumer_takes_the_configured_fetch_wait() -> None:
    app = create_worker_app(SETTINGS, CentreConfig())
    thread = app.consumer._new_consumer_thread()  # type: ignore[attr-defined]
    consumer = thread._create_worker_consumer(app.transport)
    try:
        assert consumer._fetch_max_wait_ms == 37
    finally:
        await consumer.stop()


async def test_stage_ones_consumer_takes_the_configured_fetch_wait() -> None:
    ingress = Ingress(SETTINGS, EventValidator(), pseudonymiser_for_key(DEV_KEY))
    consumer = ingress._consumer()
    try:
        assert consumer._fetch_max_wait_ms == 37
    finally:
        await consumer.stop()


def test_the_worker_thaws_its_heap_as_a_rebalance_starts() -> None:
    """Faust collects garbage while it revokes partitions (its unacked messages are weakly
    held): nothing frozen after a batch may escape that."""
    app = create_worker_app(
        Settings(kafka_fetch_max_wait_ms=37, insecure=True, worker_gc_freeze=True), CentreConfig()
    )
    kept = [object() for _ in range(10)]  # noqa: F841 - alive while frozen
    gc.freeze()
    try:
        assert gc.get_freeze_count() > 0
        app.on_rebalance_start()
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
