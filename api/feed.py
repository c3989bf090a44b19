"""Background tasks that keep the API's view current: the changelog feed and consumer lag."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from api.readmodel import ReadModel
from callpulse.kafka import client_kwargs
from callpulse.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# Once the view has caught up, records applied between two returns to the event loop: a fetch
# brings up to 5,000, which in one piece held every request for tens of milliseconds (the tail
# of the wallboard benchmark); 200 take a few.
APPLY_SLICE = 200


class ChangelogFeed:
    """Replays the worker's state changelog (and the dead-letter topic) into the read model.

    No consumer group: every replica reads everything from the beginning; the changelog is
    compacted, so that is the current state, not the history.
    """

    def __init__(self, settings: Settings, model: ReadModel) -> None:
        self.settings = settings
        self.model = model
        self.ready = asyncio.Event()
        self.connected = False
        self._consumer: AIOKafkaConsumer | None = None

    async def run(self) -> None:
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:
                self.connected = False
                log.warning("read-model feed lost Kafka (%s); reconnecting", exc)
                await asyncio.sleep(1.0)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            **client_kwargs(self.settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=2000,
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
        )
        self._consumer = consumer
        await consumer.start()
        try:
            consumer.subscribe([self.settings.state_changelog_topic, self.settings.dlq_topic])
            self.connected = True
            targets: dict[TopicPartition, int] | None = None
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                # While replaying nobody is served (not ready): no slices, the replay is faster.
                slice_size = APPLY_SLICE if self.ready.is_set() else None
                for messages in batches.values():
                    await apply_in_slices(messages, self._apply, slice_size)
                if not self.ready.is_set():
                    targets = await self._catch_up_targets(consumer, targets)
                    if targets is not None and await _caught_up(consumer, targets):
                        self.ready.set()
                        # The replayed view lives as long as the process and holds no cycles:
                        # out of the collector's reach, a full collection does not walk its
                        # million objects (about 0.25 s each time, on the loop, set off every
                        # second or so by answer builds whose objects live across slices).
                        gc.freeze()
                        _return_free_memory()
        finally:
            self.connected = False
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _catch_up_targets(
        self, consumer: AIOKafkaConsumer, targets: dict[TopicPartition, int] | None
    ) -> dict[TopicPartition, int] | None:
        """End offsets seen when the assignment first appears: what 'recovered' means."""
        if targets is not None:
            return targets
        assignment = consumer.assignment()
        if not assignment:
            topics = await consumer.topics()
            wanted = {self.settings.state_changelog_topic, self.settings.dlq_topic}
            return {} if not (topics & wanted) else None
        ends: dict[TopicPartition, int] = await consumer.end_offsets(list(assignment))
        return ends

    def _apply(self, message: ConsumerRecord[bytes, bytes]) -> None:
        if message.topic == self.settings.dlq_topic:
            self.model.count_invalid(_dlq_reason(message.value))
            return
        if message.key is None:
            return
        try:
            record_key = orjson.loads(message.key)
            value = None if message.value is None else orjson.loads(message.value)
            self.model.apply(record_key, value)
        except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
            log.exception("skipping an unreadable state record at %s", message.offset)


async def apply_in_slices(
    messages: Sequence[T], apply: Callable[[T], None], slice_size: int | None
) -> None:
    """``apply`` each message in order, returning to the event loop after every
    ``slice_size`` of them (None: all in one go)."""
    for count, message in enumerate(messages, 1):
        apply(message)
        if slice_size is not None and count % slice_size == 0:
            await asyncio.sleep(0)


def _return_free_memory() -> None:
    """Give the allocator's free pages back to the system once the replay is over (glibc only).

    The replay frees the fetched batches and every record's decoded JSON: glibc keeps most of
    that in its heap (its trim threshold rises with the large blocks freed), about 30 MB of a
    24-hour view's RSS that nothing reuses.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


async def _caught_up(consumer: AIOKafkaConsumer, targets: dict[TopicPartition, int]) -> bool:
    for tp, end in targets.items():
        if await consumer.position(tp) < end:
            return False
    return True


def _dlq_reason(value: bytes | None) -> str:
    try:
        record: Any = orjson.loads(value or b"")
        reason = record.get("reason")
        return reason if isinstance(reason, str) else "unknown"
    except (orjson.JSONDecodeError, AttributeError):
        return "unknown"


class LagMonitor:
    """Consumer lag of the worker's two stages per partition, polled in the background."""

    def __init__(self, settings: Settings, every_s: float = 5.0) -> None:
        self.settings = settings
        self.every_s = every_s
        self.lag: dict[tuple[str, int], int] = {}

    async def run(self) -> None:
        while True:
            try:
                self.lag = await self._measure()
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as exc:
                log.debug("lag not measured: %s", exc)
            await asyncio.sleep(self.every_s)

    async def _measure(self) -> dict[tuple[str, int], int]:
        # Each stage commits in its own group: stage one (a plain consumer) reads the input
        # topic, stage two (the Faust app) the routed one.
        groups = {
            self.settings.events_topic: self.settings.validate_group,
            self.settings.routed_topic: self.settings.app_id,
        }
        admin = AIOKafkaAdminClient(**client_kwargs(self.settings))
        consumer = AIOKafkaConsumer(**client_kwargs(self.settings), group_id=None)
        await admin.start()
        await consumer.start()
        try:
            await consumer.topics()  # refresh metadata so partitions_for_topic knows them
            lag: dict[tuple[str, int], int] = {}
            for topic, group in groups.items():
                partitions = [
                    TopicPartition(topic, p)
                    for p in sorted(consumer.partitions_for_topic(topic) or ())
                ]
                if not partitions:
                    continue
                # Naming the partitions: some brokers (the embedded one) answer only that form.
                committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
                ends = await consumer.end_offsets(partitions)
                lag.update(
                    {
                        (tp.topic, tp.partition): max(ends[tp] - max(committed[tp].offset, 0), 0)
                        for tp in partitions
                        if tp in committed
                    }
                )
            return lag
        finally:
            await consumer.stop()
            await admin.close()
