"""The light figures alert rules read (``api.alerts.light``) are the KPI object's, exactly.

A varied model (the API tests' hand-made scenario with every event kind, plus generated traffic
over five queues with other thresholds, service-level formulas and a time zone) is fed through
the real worker code record by record, late events included, while the clock moves on within a
minute, across minutes and by whole hours. After every step, for every queue and window, every
field a rule can name must equal ``ModelFigures`` (the full KPI object plus the live figures,
what the engine read before) and, every few steps, the same field of
``GET /v1/queues/{queue}/kpis``; engines on both sources send the same transitions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import pytest

from api import clock
from api.alerts.config import FIELDS, LIVE_FIELDS, AlertConfig, Rule
from api.alerts.engine import AlertEngine
from api.alerts.figures import ModelFigures
from api.alerts.light import RESOLUTION_FIELDS, RuleFigures
from api.services import Services
from bench.events import Traffic, event_chunks
from callpulse.settings import Settings
from stream.kpi.config import CentreConfig, QueueConfig
from stream.kpi.windows import WINDOWS
from tests.unit.apifixtures import (
    T0_US,
    ChangelogStore,
    TestClient,
    client_for,
    s,
    scenario_events,
    validated,
)

CENTRE = CentreConfig(
    queues={
        "sales": QueueConfig(threshold_s=25),
        "support": QueueConfig(),  # configured, never sees an event
        "q000": QueueConfig(threshold_s=10, sl_formula="answered_only"),
        "q001": QueueConfig(sl_formula="offered", timezone="America/New_York"),
        "q002": QueueConfig(threshold_s=60, timezone="Asia/Kolkata"),
    }
)
START_US = T0_US - s(7200)
END_US = T0_US + s(1800)


def every_field_rules(queue: str) -> tuple[Rule, ...]:
    """A rule on every figure a rule can name (so ``fcr_rate`` comes from the resolution join)."""
    return tuple(
        Rule(f"r_{field}", field, ">", 0.5, 0.5, "15m", 30.0, 3 if n % 2 else 0, "warning")
        for n, field in enumerate(FIELDS)
    )


def preset_rules(queue: str) -> tuple[Rule, ...]:
    return AlertConfig().rules_for(queue, CENTRE.for_queue(queue).target)


def all_windows_rules(queue: str) -> tuple[Rule, ...]:
    """The presets over every window (a queue's rules may name several)."""
    return tuple(
        replace(rule, name=f"{rule.name}_{window}", window=window)
        for rule in preset_rules(queue)
        for window in WINDOWS
    )


def events() -> list[dict[str, Any]]:
    """Every event kind; generated calls with callers (repeat callers), agents and surveys;
    resolutions, some of them for generated calls."""
    generated = [
        event
        for chunk in event_chunks(Traffic(3000, START_US, END_US, queues=5, agents_per_queue=3))
        for event in chunk
    ]
    rng = random.Random(5)
    resolutions = []
    for n, event in enumerate(generated):
        if event["type"] == "call.wrapup_ended" and rng.random() < 0.3:
            resolution = {
                "event_id": f"res{n}",
                "type": "call.resolved",
                "ts": event["ts"],
                "queue": event["queue"],
                "call_id": event["call_id"],
                "resolved": rng.random() < 0.8,
            }
            if rng.random() < 0.5:  # else the repeat-caller rule decides, across queues
                resolution["first_contact"] = rng.random() < 0.6
            resolutions.append(resolution)
    return [*scenario_events(), *generated, *resolutions]


class Feed:
    """Events in time order, some held back a few steps (late), through the real worker."""

    def __init__(self, services: Services) -> None:
        from stream.processor import MessageProcessor

        self.model = services.model
        self.store = ChangelogStore()
        self.processor = MessageProcessor(CENTRE)
        self.fed = 0
        self.offset = 0
        everything = validated(events(), END_US + s(900))
        self.pending = sorted(everything, key=lambda e: e["ts_us"])
        self.late: list[tuple[int, dict[str, Any]]] = []
        self.held_back = 0
        self.rng = random.Random(11)

    def until(self, now_us: int, step: int) -> None:
        due = [e for e in self.pending if e["ts_us"] < now_us]
        self.pending = self.pending[len(due) :]
        batch = [e for when, e in self.late if when <= step]
        self.late = [(when, e) for when, e in self.late if when > step]
        for event in due:
            if self.rng.random() < 0.05:
                self.late.append((step + self.rng.randrange(1, 4), event))
                self.held_back += 1
            else:
                batch.append(event)
        for first in range(0, len(batch), 7):
            self.processor.process(
                self.store, batch[first : first + 7], offset=self.offset, partition=0, now_us=now_us
            )
            self.offset += 1
        for key, value in self.store.log[self.fed :]:
            self.model.apply(key, value)
        self.fed = len(self.store.log)


def moments() -> list[int]:
    """Now, moving on: within a minute, across minutes, whole hours, at minute boundaries."""
    rng = random.Random(3)
    steps = [s(0.4), s(7), s(30), s(59.999999), s(60), s(61), s(600), s(3600)]
    now_us, found = START_US + s(600), []
    while now_us < END_US + s(900):
        found.append(now_us)
        now_us += rng.choices(steps, weights=[3, 3, 3, 2, 2, 2, 2, 1])[0]
    return found


@dataclass
class Clock:
    now_us: int = 0


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The API's clock, stopped where each step puts it."""
    stopped = Clock()
    monkeypatch.setattr(clock, "now_us", lambda: stopped.now_us)
    return stopped


@pytest.fixture
def services() -> Services:
    return Services(settings=Settings(_env_file=None), centre=CENTRE)  # type: ignore[call-arg]


def test_rule_figures_equal_the_kpi_object_over_a_varied_model(
    services: Services, frozen: Clock
) -> None:
    full = ModelFigures(services.reader)
    light = RuleFigures(services.reader, every_field_rules)
    presets = RuleFigures(services.reader, all_windows_rules)
    feed = Feed(services)
    client = client_for(services)
    compared = 0
    for step, now_us in enumerate(moments()):
        frozen.now_us = now_us
        feed.until(now_us, step)
        for queue in [*full.queue_names(), "unknown"]:
            for window in WINDOWS:
                expected = full.figures(queue, window, now_us)
                got = light.figures(queue, window, now_us)
                cheaper = presets.figures(queue, window, now_us)
                for field in FIELDS:
                    assert got[field] == expected[field], (step, queue, window, field)
                    if field not in RESOLUTION_FIELDS:
                        assert cheaper[field] == expected[field], (step, queue, window, field)
                    compared += 1
                if step % 5 == 0 and queue != "unknown":
                    _same_as_answered(client, queue, window, got)
    assert compared > 40_000 and feed.held_back > 50


def _same_as_answered(client: TestClient, queue: str, window: str, figures: dict[str, Any]) -> None:
    reply = client.get(f"/v1/queues/{queue}/kpis", params={"window": window})
    assert reply.status_code == 200
    answered = reply.json()
    for field in FIELDS:
        if field not in LIVE_FIELDS:
            assert figures[field] == answered[field], (queue, window, field)


def test_engines_on_either_source_send_the_same_transitions(
    services: Services, frozen: Clock
) -> None:
    config = AlertConfig()

    def rules(queue: str) -> tuple[Rule, ...]:
        return (*config.rules_for(queue, CENTRE.for_queue(queue).target), *every_field_rules(queue))

    old, new = AlertEngine(rules), AlertEngine(rules)
    full = ModelFigures(services.reader)
    light = RuleFigures(services.reader, new.rules)
    feed = Feed(services)
    sent = 0
    for step, now_us in enumerate(moments()):
        frozen.now_us = now_us
        feed.until(now_us, step)
        expected = old.evaluate(full, now_us)
        assert new.evaluate(light, now_us) == expected
        sent += len(expected)
    assert sent > 100
    assert new.states == old.states


def test_the_model_used_is_varied() -> None:
    kinds = {event["type"] for event in events()}
    assert {
        "call.offered",
        "call.answered",
        "call.abandoned",
        "call.exited",
        "call.transferred",
        "call.ended",
        "call.wrapup_ended",
        "call.resolved",
        "survey.response",
        "agent.state",
    } <= kinds
