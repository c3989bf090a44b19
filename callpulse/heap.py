"""The collector in the worker: what outlives a batch is frozen; the whole heap is collected
once an hour, so cyclic garbage frozen with it is still reclaimed.

With CPython's generational collector every container that outlives a young collection is
scanned again in the middle generation before it reaches the old one, and the old generation is
walked whole each time it has grown by a quarter: in-process, a replay's two stages spent an
eighth of their CPU there (``bench.state_growth``), on objects that hold no cycles (the table's
records, runs waiting for their changelog acknowledgement). ``gc.freeze()`` after a batch takes
everything alive then out of every later scan. It would also freeze any cyclic garbage alive at
that moment (Kafka clients' futures, exception tracebacks): measured, there is next to none
(full collections every 5 s through a 300,000-event run found 35 unreachable objects after
startup, then none), and the hourly full collection reclaims it. That collection walks every
tracked object (0.03 s in a worker just started, 0.4 s once ``memory://`` holds 300,000 events'
state, ~10 s for 10 million), so it is also spaced to ``SPACING`` times its own duration.
``thaw`` undoes the freezing when something else relies on collections (the worker calls it as
a rebalance starts).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

FULL_COLLECTION_EVERY_S = 3600.0
SPACING = 50

log = logging.getLogger(__name__)


class BatchCollector:
    """Call ``after_batch`` once a batch's work is done and its objects are what lives on."""

    def __init__(
        self,
        every_s: float = FULL_COLLECTION_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every_s = every_s
        self._clock = clock
        self._due = clock() + every_s
        self.full_collections = 0

    def thaw(self) -> None:
        """Everything back in the collector's reach, and a full collection at the next batch's
        end. For a rebalance: Faust cleans up after revoked partitions by collecting garbage
        (``Consumer.wait_empty`` calls ``gc.collect()`` until its weakly held unacked messages
        are gone, abandoned stream generators are finalised when collected), which frozen
        garbage would escape."""
        gc.unfreeze()
        self._due = self._clock()

    def after_batch(self) -> None:
        now = self._clock()
        if now >= self._due:
            gc.unfreeze()
            started = time.perf_counter()
            unreachable = gc.collect()
            took = time.perf_counter() - started
            self.full_collections += 1
            log.debug("full collection: %d unreachable objects in %.3f s", unreachable, took)
            self._due = now + max(self.every_s, SPACING * took)
        gc.freeze()
