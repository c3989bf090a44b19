"""Sending alert transitions: a Kafka topic and webhooks, retried, dead-lettered at the end.

Each channel has its own queue and worker, so a slow or broken receiver never holds up the
evaluator or another receiver, and one receiver gets an alert's transitions in order (a retried
``firing`` is never overtaken by its ``resolved``). A transition that still fails after the last
try, or that a receiver refuses for good (a 4xx other than 408 and 429), is a dead letter: logged,
counted in ``callpulse_alert_deliveries_total{outcome="dead_lettered"}`` and written to the
dead-letter topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import orjson

from api.alerts.engine import Transition
from stream.kpi.timeutil import US_PER_S, us_to_rfc3339

log = logging.getLogger(__name__)

QUEUE_MAX = 10_000  # transitions waiting per channel; beyond it they go straight to dead letters
DRAIN_S = 2.0  # how long stop() lets queued transitions go out
ALL_STATUSES = frozenset({"pending", "firing", "resolved", "cancelled"})
# Chat and paging receivers hear about alerts that fired, not about ones that came to nothing.
WEBHOOK_STATUSES = frozenset({"firing", "resolved"})


class PermanentFailure(Exception):
    """The receiver refused the transition; sending it again would not help."""


class Channel(Protocol):
    name: str
    statuses: frozenset[str]

    async def send(self, transition: Transition) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    initial_s: float = 1.0
    max_s: float = 60.0

    def delays_s(self) -> list[float]:
        """Pauses between tries: doubling from ``initial_s``, capped at ``max_s``."""
        return [min(self.initial_s * 2**n, self.max_s) for n in range(self.attempts - 1)]


class WebhookChannel:
    """POSTs JSON: the transition itself (``json``) or ``{"text": summary}`` (``slack``)."""

    def __init__(self, name: str, url: str, style: str, client: Callable[[], httpx.AsyncClient]):
        self.name, self.url, self.style, self._client = name, url, style, client
        self.statuses = WEBHOOK_STATUSES

    async def send(self, transition: Transition) -> None:
        body = {"text": transition["summary"]} if self.style == "slack" else transition
        reply = await self._client().post(
            self.url, content=orjson.dumps(body), headers={"content-type": "application/json"}
        )
        code = reply.status_code
        if 400 <= code < 500 and code not in (408, 429):
            raise PermanentFailure(f"HTTP {code}")
        reply.raise_for_status()


class KafkaChannel:
    """Every transition into the alerts topic, keyed by queue (one queue's stay in order)."""

    def __init__(self, send: Callable[[str, bytes, bytes], Awaitable[None]], topic: str) -> None:
        self.name, self.statuses = "kafka", ALL_STATUSES
        self._send, self.topic = send, topic

    async def send(self, transition: Transition) -> None:
        await self._send(self.topic, orjson.dumps(transition), transition["queue"].encode())


def redacted(url: str) -> str:
    """Scheme, host and port only: webhook paths and queries often hold the secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


class Notifier:
    """Fans transitions out to the channels; counts what was delivered and what was not."""

    def __init__(
        self,
        channels: list[Channel],
        retry: RetryPolicy,
        dead_letter: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        drain_s: float = DRAIN_S,
    ) -> None:
        self.channels, self.retry, self.drain_s = channels, retry, drain_s
        self._dead_letter, self._sleep, self._clock = dead_letter, sleep, clock
        self._queues = {c.name: asyncio.Queue[Transition](QUEUE_MAX) for c in channels}
        self._workers: list[asyncio.Task[None]] = []
        self.counts: dict[tuple[str, str], int] = {}

    def start(self) -> None:
        self._workers = [asyncio.create_task(self._work(channel)) for channel in self.channels]

    async def stop(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(q.join() for q in self._queues.values())), self.drain_s
            )
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    def submit(self, transition: Transition) -> None:
        for channel in self.channels:
            if transition["status"] not in channel.statuses:
                continue
            try:
                self._queues[channel.name].put_nowait(transition)
            except asyncio.QueueFull:
                task = self._bury(channel, transition, "too many transitions waiting", 0)
                self._workers.append(asyncio.create_task(task))

    async def _work(self, channel: Channel) -> None:
        queue = self._queues[channel.name]
        while True:
            transition = await queue.get()
            try:
                await self.deliver(channel, transition)
            finally:
                queue.task_done()

    async def deliver(self, channel: Channel, transition: Transition) -> bool:
        """Try, pause, try again...; True once delivered, False once dead-lettered."""
        delays = self.retry.delays_s()
        for attempt in range(1, self.retry.attempts + 1):
            try:
                await channel.send(transition)
            except PermanentFailure as exc:
                await self._bury(channel, transition, str(exc), attempt)
                return False
            except Exception as exc:  # any failure to deliver is retried: the receiver's problem
                if attempt == self.retry.attempts:
                    await self._bury(channel, transition, _reason(exc), attempt)
                    return False
                self._count(channel.name, "retried")
                log.info("alert to %s failed (%s); retrying", channel.name, _reason(exc))
                await self._sleep(delays[attempt - 1])
            else:
                self._count(channel.name, "delivered")
                return True
        return False

    async def _bury(
        self, channel: Channel, transition: Transition, reason: str, tries: int
    ) -> None:
        self._count(channel.name, "dead_lettered")
        log.error("alert %s to %s dead-lettered: %s", transition.get("id"), channel.name, reason)
        if self._dead_letter is None:
            return
        record = {
            "channel": channel.name,
            "reason": reason,
            "attempts": tries,
            "failed_at": us_to_rfc3339(int(self._clock() * US_PER_S)),
            "transition": transition,
        }
        try:
            await self._dead_letter(record)
        except Exception:  # the log line above is then the only trace; keep the worker alive
            log.exception("dead letter for alert %s not written", transition.get("id"))

    def _count(self, channel: str, outcome: str) -> None:
        self.counts[(channel, outcome)] = self.counts.get((channel, outcome), 0) + 1


def _reason(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
