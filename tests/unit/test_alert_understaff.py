"""Understaffing on purpose makes alerts fire, and bringing the agents back resolves them.

The simulator's traffic goes through the real validator, worker code and read model (no broker)
into the alert service, whose clock is the simulated time::

    simulated   0 ............ 15 min ................. 25 min ................ 32 min
    sales       normal staffing | understaff(sales, 0)   | restaff(sales)
    alerts                        no_agent_available and   resolved
                                  longest_wait_high fire
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from api.alerts.config import AlertConfig
from api.alerts.engine import AlertEngine
from api.alerts.light import RuleFigures
from api.alerts.service import AlertService
from api.readmodel import ReadModel
from api.views import ModelReader
from callpulse.cli import cli
from callpulse.simulator import Simulation, default_centre
from callpulse.simulator.understaff import UnderstaffPlan
from stream.decode import Rejection
from stream.kpi.config import CentreConfig
from stream.kpi.timeutil import US_PER_S, parse_ts_us
from stream.processor import MessageProcessor
from stream.validation import EventValidator
from tests.unit.apifixtures import ChangelogStore, feed

T0_US = parse_ts_us("2024-03-04T10:00:00Z")
STEP_S = 10


@pytest.mark.parametrize(
    ("spec", "plan"),
    [
        ("sales", ("sales", 0.2, 600.0, 60.0)),  # every default
        ("sales:0", ("sales", 0.0, 600.0, 60.0)),  # nobody left
        ("vip:0.5:120", ("vip", 0.5, 120.0, 60.0)),
        ("vip:1:0:0", ("vip", 1.0, 0.0, 0.0)),  # everyone kept, at once: a no-op
    ],
)
def test_plan_specs(spec: str, plan: tuple[str, float, float, float]) -> None:
    parsed = UnderstaffPlan.parse(spec)
    assert (parsed.queue, parsed.factor, parsed.duration_s, parsed.after_s) == plan


@pytest.mark.parametrize(
    "spec",
    [
        "",  # no queue
        ":0.5",  # no queue, a factor
        "sales:1.5",  # keeps more agents than it has
        "sales:-0.1",  # negative factor
        "sales:half",  # not a number
        "sales:0.2:-5",  # negative duration
        "sales:0.2:nan",  # NaN duration never ends
        "sales:0.2:60:30:9",  # one number too many
    ],
)
def test_bad_plan_specs(spec: str) -> None:
    with pytest.raises(ValueError, match=repr(spec)):
        UnderstaffPlan.parse(spec)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["simulate", "--understaff", "nowhere"], "no simulated queue 'nowhere'"),  # unknown queue
        (["simulate", "--understaff", "sales:2"], "FACTOR must be between 0 and 1"),
        (["dev", "--understaff", "sales:x"], "are numbers"),  # refused before anything starts
    ],
)
def test_the_cli_refuses_a_bad_plan_before_starting(argv: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2
    assert message in " ".join(result.output.replace("│", " ").split())


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def understaff(self, queue: str, factor: float) -> None:
        self.calls.append(("understaff", (queue, factor)))

    def restaff(self, queue: str) -> None:
        self.calls.append(("restaff", queue))


def test_the_plan_acts_once_at_each_moment() -> None:
    plan, simulation = UnderstaffPlan.parse("sales:0.25:300:60"), Recorder()
    ticks = [0.0, 30.0, 59.9, 60.0, 60.5, 200.0, 359.9, 360.0, 400.0, 1000.0]
    seen = []
    for live_s in ticks:
        plan(simulation, live_s)  # type: ignore[arg-type]  # records what it is asked to do
        seen.append(len(simulation.calls))
    assert seen == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    assert simulation.calls == [("understaff", ("sales", 0.25)), ("restaff", "sales")]


def agent_states(events: list[dict[str, Any]], queue: str) -> dict[str, str]:
    latest: dict[str, str] = {}
    for event in events:
        if event["type"] == "agent.state" and queue in event["queues"]:
            latest[str(event["agent_id"])] = str(event["state"])
    return latest


def test_restaff_brings_the_benched_agents_back() -> None:
    simulation = Simulation(default_centre(), start_us=T0_US, seed=3)
    events = simulation.advance(T0_US + 600 * US_PER_S)
    simulation.understaff("sales", 0.0)
    events += simulation.advance(T0_US + 1500 * US_PER_S)
    benched = agent_states(events, "sales")
    assert set(benched.values()) == {"logged_out"}, "every sales agent left once its call ended"
    simulation.restaff("sales")
    events += simulation.advance(T0_US + 1510 * US_PER_S)
    back = agent_states(events, "sales")
    assert sorted(back) == sorted(benched)
    assert "logged_out" not in set(back.values()), "all of them are working again"


class Pipeline:
    """Simulated events -> validator -> worker code -> read model -> alert service."""

    def __init__(self, simulation: Simulation, service_for: Callable[[ReadModel], AlertService]):
        self.simulation = simulation
        self.store = ChangelogStore()
        self.validator = EventValidator()
        self.processor = MessageProcessor(CentreConfig())
        self.model = ReadModel()
        self.service = service_for(self.model)
        self.offset = 0
        self.sent: list[tuple[float, str, str, str]] = []

    def run_until(self, until_s: float) -> None:
        while self.simulation.now_us < T0_US + until_s * US_PER_S:
            now_us = self.simulation.now_us + STEP_S * US_PER_S
            events = self.accepted(self.simulation.advance(now_us), now_us)
            seen = len(self.store.log)
            self.processor.process(
                self.store, events, offset=self.offset, partition=0, now_us=now_us
            )
            self.offset += 1
            feed(self.model, self.store.log[seen:])
            for t in self.service.evaluate():
                self.sent.append(((now_us - T0_US) / US_PER_S, t["queue"], t["rule"], t["status"]))

    def accepted(self, events: list[dict[str, Any]], now_us: int) -> list[dict[str, Any]]:
        results = [self.validator.validate(event, now_us=now_us) for event in events]
        refused = [result for result in results if isinstance(result, Rejection)]
        assert not refused, f"simulated events refused: {refused[:3]}"
        return results  # type: ignore[return-value]  # every one is an event, as asserted

    def sales(self, rule: str, since_s: float) -> list[tuple[float, str]]:
        return [(at, status) for at, queue, name, status in self.sent if queue == "sales"
                and name == rule and at >= since_s]  # fmt: skip


def test_understaffing_fires_alerts_and_restaffing_resolves_them() -> None:
    simulation = Simulation(default_centre(), start_us=T0_US, seed=3)
    config, centre = AlertConfig(), CentreConfig()

    def service_for(model: ReadModel) -> AlertService:
        engine = AlertEngine(lambda queue: config.rules_for(queue, centre.for_queue(queue).target))
        figures = RuleFigures(ModelReader(model, centre), engine.rules)
        return AlertService(engine, figures, model, now_us=lambda: simulation.now_us)

    pipeline = Pipeline(simulation, service_for)
    pipeline.run_until(900)
    active = {(a["queue"], a["rule"]) for a in pipeline.service.engine.active()}
    assert ("sales", "no_agent_available") not in active, "fully staffed, someone is free"
    simulation.understaff("sales", 0.0)
    pipeline.run_until(1500)
    simulation.restaff("sales")
    pipeline.run_until(1920)
    for rule in ("no_agent_available", "longest_wait_high"):
        statuses = [status for _, status in pipeline.sales(rule, since_s=900)]
        assert "firing" in statuses, f"{rule} never fired while sales had no agents"
        fired_s = next(at for at, status in pipeline.sales(rule, 900) if status == "firing")
        resolved = [at for at, status in pipeline.sales(rule, 1500) if status == "resolved"]
        assert fired_s < 1500, f"{rule} fired only after the agents came back"
        assert resolved, f"{rule} did not resolve once the agents were back"
        assert statuses[-1] == "resolved", f"{rule} is active again at the end: {statuses}"
