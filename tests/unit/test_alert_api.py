"""Alerts through the API, from contract events processed by the real worker code (no broker):
``GET /v1/alerts``, ``GET /v1/alerts/rules``, ``/metrics`` and the SSE ``alert`` event.

Queue ``sales`` (NOW = 10:20:30): agent a1 on a call since 10:15:30; twelve calls answered after
60 s each between 10:10:30 and 10:15:00 (service level 0 %); c99 waiting since 10:17:10
(200 s). Queue ``support``: twelve calls answered after 5 s, no agents known: nothing fires.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.alerts.config import AlertConfig
from api.alerts.engine import AlertEngine
from api.alerts.light import RuleFigures
from api.alerts.service import AlertService
from api.main import create_app
from api.services import Services
from callpulse.settings import Settings
from stream.kpi.config import CentreConfig
from stream.kpi.timeutil import US_PER_S, parse_ts_us
from stream.kpi.windows import live_end_us
from tests.reference import reference_kpis
from tests.unit.apifixtures import TestClient, compacted, feed, iso, run_worker

NOW_US = parse_ts_us("2024-03-01T10:20:30Z")
CENTRE = CentreConfig()


def s(seconds: float) -> int:
    return round(seconds * US_PER_S)


def scenario() -> list[dict[str, Any]]:
    def event(event_id: str, kind: str, offset_s: float, **fields: Any) -> dict[str, Any]:
        return {"event_id": event_id, "type": kind, "ts": iso(NOW_US + s(offset_s)), **fields}

    events = [
        event("g1", "agent.state", -1200, agent_id="a1", state="available", queues=["sales"]),
        event("g2", "agent.state", -300, agent_id="a1", state="on_call", queues=["sales"]),
        event("w1", "call.offered", -200, queue="sales", call_id="c99"),
    ]
    for n in range(12):
        for queue, wait_s in (("sales", 60), ("support", 5)):
            call = {"queue": queue, "call_id": f"c{n}"}
            offered_s = -660 + n * 20
            events.append(event(f"{queue}{n}o", "call.offered", offered_s, **call))
            answered_s = offered_s + wait_s
            events.append(event(f"{queue}{n}a", "call.answered", answered_s, **call, agent_id="a1"))
    return events


class Clock:
    def __init__(self) -> None:
        self.now_us = NOW_US

    def __call__(self) -> int:
        return self.now_us


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def services(clock: Clock) -> Services:
    services = Services(settings=Settings(_env_file=None), centre=CENTRE)  # type: ignore[call-arg]
    feed(services.model, compacted(run_worker(scenario(), now_us=NOW_US, centre=CENTRE)))
    config = AlertConfig()
    engine = AlertEngine(lambda queue: config.rules_for(queue, CENTRE.for_queue(queue).target))
    services.alerts = AlertService(
        engine, RuleFigures(services.reader, engine.rules), services.model, now_us=clock
    )
    return services


@pytest.fixture
def client(services: Services) -> TestClient:
    """Without its lifespan: the tests evaluate when they choose (the last test does not)."""
    return TestClient(create_app(services))


def brief(alerts: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(a["queue"], a["rule"], a["status"]) for a in alerts]


def test_nothing_is_active_before_the_first_evaluation(client: TestClient) -> None:
    assert client.get("/v1/alerts").json() == {"active": [], "recent": []}


def test_alerts_fire_after_their_for_and_match_the_reference(
    client: TestClient, services: Services, clock: Clock
) -> None:
    assert services.alerts is not None
    services.alerts.evaluate()
    first = client.get("/v1/alerts").json()
    assert brief(first["active"]) == [
        ("sales", "longest_wait_high", "firing"),  # no `for`: fires at once
        ("sales", "no_agent_available", "pending"),  # a1 is on a call; c99 waits
        ("sales", "service_level_low", "pending"),
    ]
    clock.now_us += s(60)  # past both `for`s: 30 s and 60 s
    services.alerts.evaluate()
    reply = client.get("/v1/alerts").json()
    assert [a["status"] for a in reply["active"]] == ["firing"] * 3
    assert brief(reply["recent"][:2]) == [
        ("sales", "service_level_low", "firing"),  # newest first
        ("sales", "no_agent_available", "firing"),
    ]
    values = {a["rule"]: a["value"] for a in reply["active"]}
    now_us = clock.now_us
    end_us = live_end_us(now_us)
    window = reference_kpis(scenario(), queue="sales", start_us=end_us - s(900), end_us=end_us)
    live = reference_kpis(scenario(), queue="sales", start_us=now_us, end_us=now_us + 1)
    assert values["service_level_low"] == window["service_level"] == 0.0
    assert values["longest_wait_high"] == pytest.approx(live["longest_wait_s"]) == 260
    assert values["no_agent_available"] == live["calls_waiting"] == 1
    assert client.get("/v1/alerts", params={"queue": "support"}).json() == {
        "active": [],
        "recent": [],
    }
    assert len(client.get("/v1/alerts", params={"limit": 2}).json()["recent"]) == 2


def test_rules_show_what_each_queue_runs(client: TestClient) -> None:
    rules = client.get("/v1/alerts/rules", params={"queue": "sales"}).json()["queues"]["sales"]
    assert {r["name"]: r["threshold"] for r in rules} == {
        "abandon_rate_high": 0.1,
        "longest_wait_high": 120.0,
        "no_agent_available": 0.0,
        "service_level_low": 0.8,
    }
    assert sorted(client.get("/v1/alerts/rules").json()["queues"]) == ["sales", "support"]


def test_limit_is_validated(client: TestClient) -> None:
    reply = client.get("/v1/alerts", params={"limit": -1})
    assert reply.status_code == 422 and reply.json()["error"] == "invalid_request"


def test_metrics_export_firing_alerts(client: TestClient, services: Services) -> None:
    assert services.alerts is not None
    services.alerts.evaluate()
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    firing = {
        (sample.labels["queue"], sample.labels["rule"]): sample.value
        for sample in families["callpulse_alerts_firing"].samples
    }
    assert firing[("sales", "longest_wait_high")] == 1.0
    assert firing[("sales", "service_level_low")] == 0.0  # pending is not firing
    assert firing[("support", "service_level_low")] == 0.0
    assert len(firing) == 8  # two queues, four preset rules each
    transitions = {
        sample.labels["status"]: sample.value
        for sample in families["callpulse_alert_transitions"].samples
        if sample.name.endswith("_total")
    }
    assert transitions == {"firing": 1.0, "pending": 2.0}


def test_alerting_off_is_a_clear_404() -> None:
    services = Services(settings=Settings(_env_file=None), centre=CENTRE)  # type: ignore[call-arg]
    with TestClient(create_app(services)) as client:
        reply = client.get("/v1/alerts")
    assert reply.status_code == 404
    assert "CALLPULSE_ALERTS_ENABLED" in reply.json()["message"]


def test_the_stream_sends_alert_events_for_new_transitions(
    client: TestClient, services: Services
) -> None:
    connected, done = threading.Event(), threading.Event()
    received: list[str] = []

    with client.stream("GET", "/v1/stream", params={"queues": "sales"}) as stream:

        def evaluate_once_connected() -> None:
            connected.wait(10)
            assert services.alerts is not None
            services.alerts.evaluate()
            if not done.wait(10):
                stream.close()  # no alert came: end the test instead of hanging

        worker = threading.Thread(target=evaluate_once_connected)
        worker.start()
        for line in stream.iter_lines():
            connected.set()  # the stream is open: what happens now is new to it
            received.append(line)
            if {"event: alert", "event: kpis"} <= set(received):
                break
        done.set()
    worker.join()
    assert "event: alert" in received
    assert "event: kpis" in received, "the KPI snapshots are still sent"


def test_the_running_service_evaluates_by_itself(services: Services) -> None:
    with TestClient(create_app(services)) as client:
        deadline = time.monotonic() + 10
        while not client.get("/v1/alerts").json()["active"] and time.monotonic() < deadline:
            time.sleep(0.05)
        active = client.get("/v1/alerts").json()["active"]
    assert ("sales", "longest_wait_high", "firing") in brief(active)
