"""Hot KPI answers built between requests, so a request finds its answer already there.

A build of ``/v1/kpis`` over 200 queues takes ~80 ms of the event loop (more under load); made
on the request path, it holds up every other request. The refresher builds the questions asked
in the last few seconds (api/answers.py ``HOT_S``) in slices of a few milliseconds, yielding to
the loop between slices:

- shortly before the second turns (``lead_s``), the next second's answers, with the clock at
  that second and the data seen by then, so at the turn they are there;
- when the read model has changed (debounced, like api/alerts), the newest second's again.

Until a refreshed answer is complete, requests are served the newest complete answer of their
second (api/answers.py); a request whose second has no answer yet while a round is building it
waits for that build (``AnswerCache.awaited``) rather than making its own on the loop. A round
that would still run when the next second's is due is left to that one, which reads the same
changes. Measured in-process (200 queues x 2,000 agents): a round ~75 ms of CPU, the loop never
held more than ~4-7 ms at a time; a build on the request path held it ~72 ms.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Generator

from api import clock
from api.answers import HOT_S, Answer, AnswerCache, HotQuestion, second_us
from api.readmodel import ReadModel
from api.views import ModelReader
from stream.kpi.timeutil import US_PER_S

log = logging.getLogger(__name__)

SLICE_S = 0.002  # the refresher holds the loop about this long before letting requests in
DEBOUNCE_S = 0.2  # a burst of changelog records is one refresh, not hundreds
TICK_S = 0.02  # how often an idle refresher looks at the clock and the model's version
MIN_LEAD_S = 0.15  # the next second is built at least this long before it starts ...
MAX_LEAD_S = 0.5  # ... and at most this long: its data is as of then


class AnswerRefresher:
    def __init__(
        self, model: ReadModel, cache: AnswerCache, reader: Callable[[], ModelReader]
    ) -> None:
        self.model = model
        self.cache = cache
        self.reader = reader
        self.prebuilt_us = 0  # the latest second whose answers were built ahead
        self.refreshed_version = -1  # the model's version the latest round started at
        self.lead_s = MIN_LEAD_S
        self.round_s = 0.0  # how long a round takes, recently (wall time, requests included)
        self.rounds = 0

    async def run(self) -> None:
        self.cache.revalidating = True
        try:
            await self._loop()
        finally:
            self.cache.revalidating = False

    async def _loop(self) -> None:
        next_refresh = 0.0
        while True:
            now_us = clock.now_us()
            upcoming_us = second_us(now_us) + US_PER_S
            lead_us = round(self.lead_s * US_PER_S)
            prebuilt = self.prebuilt_us >= upcoming_us
            try:
                if now_us >= upcoming_us - lead_us and not prebuilt:
                    await self.build_round(upcoming_us)
                    self.prebuilt_us = upcoming_us
                    # Room for the next round to finish before its second, under load too.
                    self.lead_s = min(max(MIN_LEAD_S, 1.5 * self.round_s + 0.05), MAX_LEAD_S)
                    continue
                changed = self.model.version != self.refreshed_version
                # A refresh that would still run when the next second is due is left to that
                # second's round, which reads the same changes.
                room_s = (upcoming_us - lead_us - now_us) / US_PER_S
                if (
                    changed
                    and time.monotonic() >= next_refresh
                    and (prebuilt or room_s > self.round_s)
                ):
                    await self.build_round(max(self.prebuilt_us, second_us(now_us)))
                    next_refresh = time.monotonic() + DEBOUNCE_S
                    continue
            except Exception:  # a bug in one round must not end refreshing for good
                log.exception("answer refresh failed")
                next_refresh = time.monotonic() + DEBOUNCE_S
            until_lead_s = (upcoming_us - lead_us - now_us) / US_PER_S
            await asyncio.sleep(min(TICK_S, max(until_lead_s, 0.0)) or TICK_S)

    async def build_round(self, second: int) -> int:
        """Build every hot question's answer as of ``second`` that is not there at the model's
        version; returns how many were built."""
        started = time.perf_counter()
        self.refreshed_version = version = self.model.version
        self.rounds += 1
        loop = asyncio.get_running_loop()
        todo = []
        for hot in self.cache.hot(second - HOT_S * US_PER_S):
            held = hot.question.answers.get(second)
            if held is None or held.version != version:
                todo.append(hot)
                # A request for an answer of this second not stored yet waits for this round.
                hot.question.pending.setdefault(second, loop.create_future())
        try:
            for hot in todo:
                await self._build(hot, second)
                _settle(hot, second)
        finally:
            for hot in todo:
                _settle(hot, second)
        if todo:
            took_s = time.perf_counter() - started
            self.round_s = max(took_s, 0.5 * self.round_s + 0.5 * took_s)
        return len(todo)

    async def _build(self, hot: HotQuestion, second: int) -> None:
        version = self.model.version  # the answer holds at least what this version holds
        slices = hot.question.build(self.reader().at_second(second), second)
        body, hot.question.build_s = await in_slices(slices)
        answer = Answer(body, version, second)
        await asyncio.sleep(0)
        answer.gzipped  # noqa: B018  # made here (~2 ms), not by the first gzip request
        await asyncio.sleep(0)
        answer.etag  # noqa: B018
        self.cache.store(hot.question, answer)


def _settle(hot: HotQuestion, second: int) -> None:
    """Wake the requests waiting for this answer (built, or not: they build it then)."""
    pending = hot.question.pending.pop(second, None)
    if pending is not None and not pending.done():
        pending.set_result(None)


async def in_slices(slices: Generator[None, None, bytes]) -> tuple[bytes, float]:
    """Drive a sliced build to its end, letting the loop run every ``SLICE_S``; the bytes, and
    the time the build itself held the loop (its slices summed)."""
    busy_s = 0.0
    started = time.perf_counter()
    while True:
        try:
            next(slices)
        except StopIteration as done:
            body: bytes = done.value
            return body, busy_s + time.perf_counter() - started
        if time.perf_counter() - started >= SLICE_S:
            busy_s += time.perf_counter() - started
            await asyncio.sleep(0)
            started = time.perf_counter()
