"""The alert engine at work inside the API: evaluated on every change of the view and on a
timer, transitions kept for ``GET /v1/alerts`` and the SSE stream, and handed to delivery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from api import clock
from api.alerts.config import load_alert_config
from api.alerts.delivery import (
    Channel,
    KafkaChannel,
    Notifier,
    RetryPolicy,
    WebhookChannel,
    redacted,
)
from api.alerts.engine import AlertEngine, FigureSource, Transition
from api.alerts.light import RuleFigures
from api.alerts.publisher import AlertProducer
from api.readmodel import ReadModel
from api.views import ModelReader
from callpulse.settings import Settings
from stream.kpi.config import CentreConfig

log = logging.getLogger(__name__)

RECENT_KEPT = 200
DEBOUNCE_S = 0.2  # a burst of changelog records is one evaluation, not hundreds
# How long one slice of a round may hold the event loop before it lets requests and the
# changelog feed run. A request needs several turns of the loop, each of which may wait for one
# slice, so slices stay this small; a queue takes well under a millisecond (api.alerts.light),
# so a round over 200 queues is a handful of slices, not 200 turns of the loop.
SLICE_S = 0.002
# After a round, the loop rests at least this many times as long as the round's slices held it:
# alerts get at most a third of the API's CPU however busy the view or costly the rules.
REST_PER_ROUND = 2.0


class AlertService:
    def __init__(
        self,
        engine: AlertEngine,
        source: FigureSource,
        model: ReadModel,
        notifier: Notifier | None = None,
        producer: AlertProducer | None = None,
        interval_s: float = 1.0,
        now_us: Callable[[], int] = clock.now_us,
    ) -> None:
        self.engine, self.source, self.model = engine, source, model
        self.notifier, self.producer = notifier, producer
        self.interval_s, self.now_us = interval_s, now_us
        self.slice_s, self.timer = SLICE_S, time.perf_counter
        self.round_busy_s = 0.0  # how long the last round held the event loop, slices summed
        self.recent: deque[Transition] = deque(maxlen=RECENT_KEPT)
        self.transitions_by_status: dict[str, int] = {}
        self._http: httpx.AsyncClient | None = None

    @classmethod
    def connected(cls, settings: Settings, centre: CentreConfig, model: ReadModel) -> AlertService:
        """Rules from the queue file; delivery to Kafka and the configured webhooks."""
        config = load_alert_config(settings.queues_config, centre)
        engine = AlertEngine(lambda queue: config.rules_for(queue, centre.for_queue(queue).target))
        producer = AlertProducer(settings)
        service = cls(
            engine,
            RuleFigures(ModelReader(model, centre, settings.max_call_wait_s), engine.rules),
            model,
            producer=producer,
            interval_s=settings.alerts_eval_interval_s,
        )

        async def dead_letter(record: dict[str, Any]) -> None:
            await producer.send(settings.alerts_dlq_topic, orjson.dumps(record))

        service.notifier = Notifier(
            [KafkaChannel(producer.send, settings.alerts_topic), *service.webhooks(settings)],
            RetryPolicy(
                settings.alerts_retry_attempts,
                settings.alerts_retry_initial_s,
                settings.alerts_retry_max_s,
            ),
            dead_letter=dead_letter,
        )
        return service

    def webhooks(self, settings: Settings) -> list[Channel]:
        timeout = settings.alerts_webhook_timeout_s
        channels: list[Channel] = []
        for style, urls in (
            ("json", settings.alerts_webhook_urls),
            ("slack", settings.alerts_slack_webhook_urls),
        ):
            for n, url in enumerate(_split(urls), start=1):
                name = f"{'webhook' if style == 'json' else 'slack'}-{n}"
                log.info("alerts: %s posts to %s", name, redacted(url))
                channels.append(WebhookChannel(name, url, style, lambda: self.http(timeout)))
        return channels

    def http(self, timeout_s: float) -> httpx.AsyncClient:
        """One client for every webhook, made inside the running loop on first use."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=timeout_s)
        return self._http

    async def start(self) -> None:
        if self.producer is not None:
            await self.producer.start()
        if self.notifier is not None:
            self.notifier.start()

    async def stop(self) -> None:
        if self.notifier is not None:
            await self.notifier.stop()
        if self.producer is not None:
            await self.producer.stop()
        if self._http is not None:
            await self._http.aclose()

    async def run(self, ready: Callable[[], bool]) -> None:
        """Evaluate after each change of the view (debounced) and every ``interval_s``;
        not before the view has caught up with the changelog (a half-replayed view would
        raise alerts that are not true)."""
        changed = self.model.changed
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), self.interval_s)
            changed.clear()
            self.round_busy_s = 0.0
            if ready():
                try:
                    await self.evaluate_in_slices()
                except Exception:  # a bug in one round must not end alerting for good
                    log.exception("alert evaluation failed")
            await asyncio.sleep(rest_after(self.round_busy_s))

    def evaluate(self) -> list[Transition]:
        return self._record(self.engine.evaluate(self.source, self.now_us()))

    async def evaluate_in_slices(self) -> list[Transition]:
        """As ``evaluate``, at one instant, in slices of about ``slice_s`` (whole queues, at least
        one); requests and the feed run in between (each queue is read whole at one version of
        the view). ``round_busy_s`` adds up the slices."""
        now_us = self.now_us()
        names = self.source.queue_names()
        transitions: list[Transition] = []
        self.round_busy_s = 0.0
        began = self.timer()
        try:
            for queue in names:
                transitions += self._record(self.engine.evaluate(self.source, now_us, (queue,)))
                if self.timer() - began >= self.slice_s:
                    self.round_busy_s += self.timer() - began
                    await asyncio.sleep(0)
                    began = self.timer()
        finally:  # a round that failed half-way still counts for the rest after it
            self.round_busy_s += self.timer() - began
        return transitions

    def _record(self, transitions: list[Transition]) -> list[Transition]:
        for transition in transitions:
            status = transition["status"]
            self.transitions_by_status[status] = self.transitions_by_status.get(status, 0) + 1
            self.recent.append(transition)
            level = logging.WARNING if status in ("firing", "resolved") else logging.INFO
            log.log(level, "%s", transition["summary"])
            if self.notifier is not None:
                self.notifier.submit(transition)
        return transitions

    @property
    def sequence(self) -> int:
        return self.engine.sequence

    def since(self, sequence: int) -> list[Transition]:
        """Transitions after ``sequence``, oldest first (what an SSE client has not seen)."""
        return [t for t in self.recent if t["sequence"] > sequence]

    def snapshot(self, limit: int) -> dict[str, Any]:
        recent = list(self.recent)[-limit:] if limit > 0 else []
        return {"active": self.engine.active(), "recent": recent[::-1]}


def rest_after(round_s: float) -> float:
    """How long to wait before the next round after one that held the loop ``round_s``."""
    return max(DEBOUNCE_S, REST_PER_ROUND * round_s)


def _split(urls: str) -> list[str]:
    return [url.strip() for url in urls.split(",") if url.strip()]
