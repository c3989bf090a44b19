"""Every query of the Grafana dashboard returns data from a real Prometheus (Debian's package)
scraping a real callpulse every second; a few panels are checked against the reference.

Template variables are replaced as Grafana would with the dashboard's own defaults: a query
variable set to `All` becomes its `allValue` (a regex matching every queue), a custom one its
current value, and `$__rate_interval` a minute (a minute of one-second scrapes).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from callpulse.broker import free_port
from callpulse.process import spawn, stop_process
from stream.kpi.timeutil import US_PER_S, parse_ts_us
from tests.integration.callevents import Event, agent_state, call, now_us
from tests.integration.stack import Stack
from tests.reference import reference_kpis

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD: dict[str, Any] = json.loads(
    (ROOT / "deploy" / "grafana" / "dashboards" / "callpulse.json").read_text(encoding="utf-8")
)
BUILTINS = {"$__rate_interval": "1m", "$__interval": "1s", "$__range": "5m"}


def substitutions() -> dict[str, str]:
    values = dict(BUILTINS)
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] == "datasource":
            continue
        current = variable["current"]["value"]
        value = variable.get("allValue") if current == "$__all" else current
        assert isinstance(value, str), f"${variable['name']}: no usable default"
        values["$" + variable["name"]] = value
    return values


def panel_queries() -> list[tuple[str, str]]:
    """(panel title / ref id, PromQL with the variables replaced) for every target."""
    values = substitutions()
    found = []
    for panel in DASHBOARD["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            # Longest first: $__rate_interval before a hypothetical $__rate.
            for name in sorted(values, key=len, reverse=True):
                expr = expr.replace(name, values[name])
            assert "$" not in expr, f"{panel['title']}: unreplaced variable in {expr}"
            found.append((f"{panel['title']} / {target['refId']}", expr))
    return found


# --- Prometheus -------------------------------------------------------------------------------


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[str]:
    assert shutil.which("prometheus"), "prometheus missing: run scripts/install-system-deps"
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        # The same API under two jobs stands for two API replicas (each holds the whole view
        # and exports the same series): the panels must not count a figure twice.
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{stack.port}"]}]}
            for job in ("callpulse", "callpulse-replica")
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    log = tmp_path / "prometheus.log"
    process = spawn(
        [
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        log_path=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url), 30, "Prometheus ready", log)
        yield url
    finally:
        stop_process(process, timeout_s=10)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(condition: Any, timeout_s: float, what: str, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def query(url: str, promql: str) -> list[dict[str, Any]]:
    reply = httpx.get(url + "/api/v1/query", params={"query": promql}, timeout=10)
    body = reply.json()
    assert body["status"] == "success", f"{promql}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def finite(result: list[dict[str, Any]]) -> list[float]:
    return [v for v in (float(s["value"][1]) for s in result) if math.isfinite(v)]


# --- traffic ----------------------------------------------------------------------------------


def traffic(now: int, phase: int) -> list[Event]:
    """Answered and abandoned calls in two queues, agents in every state, and (in phase 0) a
    call stuck for 150 s, which fires the in-service `longest_wait_high` alert."""
    t0 = now - (5 - phase) * 60 * US_PER_S
    events: list[Event] = [
        agent_state(f"{phase}-a1", "available", ["sales", "support"], t0),
        agent_state(f"{phase}-a2", "on_call", ["sales"], t0),
        agent_state(f"{phase}-a3", "acw", ["support"], t0),
        agent_state(f"{phase}-a4", "paused", ["support"], t0),
    ]
    for n, (queue, wait_s, outcome) in enumerate(
        [
            ("sales", 4, "answered"),
            ("sales", 12, "answered"),
            ("sales", 35, "answered"),
            ("sales", 50, "abandoned"),
            ("support", 8, "answered"),
            ("support", 25, "answered"),
            ("support", 3, "abandoned"),
        ]
    ):
        offered = t0 + n * 10 * US_PER_S
        events += call(queue, f"{phase}-c{n}", offered, wait_s=wait_s, outcome=outcome)
    if phase == 0:
        events += call("support", "stuck", now - 150 * US_PER_S, wait_s=0, outcome="waiting")
    return events


def post(stack: Stack, events: list[Any]) -> None:
    reply = httpx.post(f"{stack.url}/v1/events", json=events, timeout=30)
    assert reply.status_code in (202, 422), reply.text


def test_every_panel_query_returns_data(stack: Stack, prometheus: str) -> None:
    sent: list[Event] = []
    for phase in (0, 1):
        # Two phases with scrapes in between: counters must rise under Prometheus's eyes for
        # rates and histogram quantiles to be numbers rather than 0 or NaN.
        events = traffic(now_us(), phase)
        duplicate = dict(events[-1])  # the same event id again: counted once
        invalid = {"event_id": f"bad-{phase}", "type": "call.offered", "ts": "yesterday"}
        post(stack, [*events, duplicate, invalid])
        sent += events
        stack.wait_processed(len(sent) + phase + 1)
        scraped = len(sent) + phase + 1
        wait_for(
            lambda n=scraped: (
                sum(finite(query(prometheus, "sum(callpulse_events_processed_total)"))) >= n
            ),
            30,
            f"Prometheus seeing {scraped} processed events",
        )
    queries = panel_queries()
    assert len(queries) >= 20

    def missing() -> list[str]:
        return [name for name, promql in queries if not finite(query(prometheus, promql))]

    # Rates need a few scrapes after the last rise; the lag monitor polls every 5 s.
    deadline = time.monotonic() + 30
    while (empty := missing()) and time.monotonic() < deadline:
        time.sleep(1)
    assert not empty, f"panel queries without data: {empty}"
    check_figures_against_reference(stack, prometheus, sent, dict(queries))
    check_queue_variable(prometheus)


def check_figures_against_reference(
    stack: Stack, prometheus: str, sent: list[Event], queries: dict[str, str]
) -> None:
    """The overview stats show the same figures as the reference computes from the events."""
    served = stack.get("/v1/kpis", window="15m")
    start_us, end_us = parse_ts_us(served["start"]), parse_ts_us(served["end"])
    panels = {
        "service_level": queries["Service level ($window) / A"],
        "abandon_rate": queries["Abandoned ($window) / A"],
        "calls_waiting": queries["Calls waiting / A"],
    }
    for field, promql in panels.items():
        by_queue = {s["metric"]["queue"]: float(s["value"][1]) for s in query(prometheus, promql)}
        for queue in ("sales", "support"):
            want = reference_kpis(sent, queue=queue, start_us=start_us, end_us=end_us)[field]
            assert by_queue[queue] == pytest.approx(want), f"{field} {queue}"
    available = query(prometheus, queries["Agents available / A"])
    assert {s["metric"]["queue"]: s["value"][1] for s in available} == {
        "sales": "2",  # x-a1 in both phases serves both queues
        "support": "2",
    }


def check_queue_variable(prometheus: str) -> None:
    variable = next(v for v in DASHBOARD["templating"]["list"] if v["name"] == "queue")
    metric, label = variable["query"].removeprefix("label_values(").rstrip(")").split(", ")
    reply = httpx.get(
        f"{prometheus}/api/v1/label/{label}/values", params={"match[]": metric}, timeout=10
    )
    assert {"sales", "support"} <= set(reply.json()["data"])
