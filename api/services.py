"""What the API runs on: the view, its readers, and the background tasks that feed it."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from api.alerts.service import AlertService
from api.answers import AnswerCache
from api.feed import ChangelogFeed, LagMonitor
from api.ingest import EventPublisher
from api.readmodel import ReadModel
from api.refresh import AnswerRefresher
from api.views import ModelReader
from callpulse.settings import Settings
from stream.kpi.config import CentreConfig
from stream.validation import EventValidator


@dataclass
class Services:
    settings: Settings
    centre: CentreConfig
    model: ReadModel = field(default_factory=ReadModel)
    validator: EventValidator = field(default_factory=EventValidator)
    feed: ChangelogFeed | None = None
    lag: LagMonitor | None = None
    publisher: EventPublisher | None = None
    alerts: AlertService | None = None
    answers: AnswerCache = field(default_factory=AnswerCache)  # KPI answers, encoded
    refresh_answers: bool = False  # build hot answers between requests (api/refresh.py)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def reader(self) -> ModelReader:
        return ModelReader(self.model, self.centre, self.settings.max_call_wait_s)

    @classmethod
    def connected(cls, settings: Settings, centre: CentreConfig) -> Services:
        """The real thing: fed from Kafka, publishing to Kafka."""
        model = ReadModel()
        return cls(
            settings=settings,
            centre=centre,
            model=model,
            validator=EventValidator(
                max_past_s=settings.retention_s, max_future_s=settings.max_future_s
            ),
            feed=ChangelogFeed(settings, model),
            lag=LagMonitor(settings),
            publisher=EventPublisher(settings),
            alerts=(
                AlertService.connected(settings, centre, model) if settings.alerts_enabled else None
            ),
            refresh_answers=True,
        )

    async def start(self) -> None:
        if self.publisher is not None:
            await self.publisher.start()
        for task in (self.feed, self.lag):
            if task is not None:
                self._tasks.append(asyncio.create_task(task.run()))
        if self.alerts is not None:
            await self.alerts.start()
            self._tasks.append(asyncio.create_task(self.alerts.run(self.is_ready)))
        if self.refresh_answers:
            refresher = AnswerRefresher(self.model, self.answers, lambda: self.reader)
            self._tasks.append(asyncio.create_task(refresher.run()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.alerts is not None:
            await self.alerts.stop()
        if self.publisher is not None:
            await self.publisher.stop()

    def lag_snapshot(self) -> dict[tuple[str, int], int]:
        return dict(self.lag.lag) if self.lag else {}

    def is_ready(self) -> bool:
        return self.feed is None or (self.feed.connected and self.feed.ready.is_set())
