"""Stage two's positions on the routed topic, kept by ``stream.continuity``, applied to Faust's
consumer: where a newly owned partition starts, seeking back over lost messages, committing
what was processed, and the rebalance in between."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from faust.types import TP, EventT

from stream.continuity import RoutedContinuity
from stream.fetchwait import aiokafka_client, partition_state

log = logging.getLogger(__name__)

# Processed offsets are committed at most this often (and at every rebalance): a crash
# replays what came after the last commit, which dedupe and the fences make harmless.
COMMIT_EVERY_S = 1.0


class RoutedPositions:
    def __init__(self, app: Any, topic: str) -> None:
        self.app = app
        self.topic = topic
        self.continuity = RoutedContinuity()
        # Held while a batch is processed: a revocation waits for it (stream.worker).
        self.batch_lock = asyncio.Lock()
        self._commit_due = 0.0
        self._committing: asyncio.Future[None] | None = None
        self._batches = 0
        self._suspects: dict[int, tuple[int, int, int]] = {}
        # What a batch may process: the assignment and generation as it began.
        self._owned: set[TP] = set()
        self._generation = -1

    def begin_batch(self) -> bool:
        """False mid-rebalance: a batch now is made of messages from before it (their
        partitions may be someone else's); they are fetched again once recovery is done."""
        if self.app.rebalancing:
            return False
        self._owned = self.app.consumer.assignment()
        self._generation = self.app.consumer_generation_id
        return True

    async def accepted(self, partition: int, events: Sequence[EventT[bytes]]) -> list[Any]:
        """The events of ``partition`` to process now (``begin_batch`` first); seeks back
        over any that went missing (they come again in a later batch)."""
        tp = TP(self.topic, partition)
        if tp not in self._owned:
            return []  # fetched before a rebalance gave the partition to another worker
        # Fetched before the last rebalance: its partition was sought back since.
        events = [e for e in events if e.message.generation_id == self._generation]
        if not events:
            return []
        if not self.continuity.knows(partition):
            self.continuity.start_at(partition, await self._start(tp))
        accepted = self.continuity.accept(partition, [e.message.offset for e in events])
        if accepted.rewind_to is not None:
            await self._rewind(tp, accepted.rewind_to)
        return list(events[accepted.first : accepted.stop])

    def processed(self, partition: int, last_offset: int) -> None:
        self.continuity.processed(partition, last_offset)

    def batch_done(self) -> None:
        self._batches += 1

    async def audit(self) -> None:
        """Seeks back a partition whose consumer position is past what was processed while
        stage two sat idle through two audits: its last messages were lost after the fetch
        (no later message would ever show the gap)."""
        if self.app.rebalancing:
            self._suspects.clear()
            return
        client = aiokafka_client(self.app.consumer)
        for tp in self.app.consumer.assignment():
            if tp.topic != self.topic:
                continue
            state = partition_state(client, tp)
            if not state.has_valid_position:
                continue
            if not self.continuity.knows(tp.partition):
                self.continuity.start_at(tp.partition, await self._start(tp))
            seen = (self.continuity.expected(tp.partition), state.position, self._batches)
            if seen[1] <= seen[0]:
                self._suspects.pop(tp.partition, None)
            elif self._suspects.get(tp.partition) == seen:
                del self._suspects[tp.partition]
                await self._rewind(tp, seen[0])
            else:
                self._suspects[tp.partition] = seen

    def commit_if_due(self) -> None:
        """Starts a commit in the background (a broker round trip the next batch need not
        wait for), unless one is under way or the last was less than COMMIT_EVERY_S ago."""
        if time.monotonic() >= self._commit_due and (
            self._committing is None or self._committing.done()
        ):
            self._committing = asyncio.ensure_future(self._commit())

    async def commit(self) -> None:
        """Commits everything processed so far, after any commit under way."""
        if self._committing is not None:
            await asyncio.shield(self._committing)
        await self._commit()

    async def _commit(self) -> None:
        self._commit_due = time.monotonic() + COMMIT_EVERY_S
        offsets = {TP(self.topic, p): o for p, o in self.continuity.to_commit().items()}
        if offsets:
            try:
                await self.app.consumer._commit_offsets(offsets)
            except Exception as exc:  # e.g. a rebalance under way: offered again next time
                self.continuity.not_committed(tp.partition for tp in offsets)
                log.info("routed offsets not committed (%r): replayed if lost", exc)

    async def _start(self, tp: TP) -> int:
        """The group's commit; none: the partition's first offset (all of it is replayed)."""
        committed: int | None = self.app.consumer._committed_offset.get(tp)
        if committed is not None:
            return committed
        earliest = await self.app.consumer.earliest_offsets(tp)
        return int(earliest.get(tp) or 0)

    async def _rewind(self, tp: TP, offset: int) -> None:
        earliest = int((await self.app.consumer.earliest_offsets(tp)).get(tp) or 0)
        if offset < earliest:  # gone by retention: nothing left to replay below it
            log.warning("%s: messages %d-%d were deleted before processing", tp, offset, earliest)
            self.continuity.start_at(tp.partition, earliest)
            offset = earliest
        log.info("%s: messages from %d went missing before processing; seeking back", tp, offset)
        await self.app.consumer.seek(tp, offset)
