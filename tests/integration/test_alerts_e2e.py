"""Both alert paths end to end, for real: a queue's service level driven down and back up.

A worker and an API on the embedded broker; a webhook receiver in this test (JSON and Slack
bodies); Debian's Prometheus scraping the API every second with deploy/prometheus's rules (their
``for`` shortened to 1 s) and sending to Debian's Alertmanager with deploy/alertmanager's config.

    calls:   1 answered in 1 s | 12 answered after 60 s       | 80 answered in 2 s
    SL 15m:  1.0 (< 10 calls)  | 1/13 = 7.7 %: both paths fire | 81/93 = 87 %: resolved (>= 85 %)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from aiokafka import AIOKafkaConsumer

from api.alerts.service import AlertService
from api.readmodel import ReadModel
from callpulse.broker import free_port
from callpulse.process import spawn, stop_process
from callpulse.settings import Settings
from stream.kpi.config import CentreConfig
from stream.kpi.timeutil import US_PER_S, parse_ts_us, us_to_rfc3339
from stream.kpi.windows import live_end_us
from tests.integration.stack import Stack, start_stack
from tests.reference import reference_kpis

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "callpulse.rules.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
QUEUES_YAML = """
alerts:
  defaults:
    service_level_low: {for: 2s}   # pending first, firing 2 s later
"""


@dataclass
class Receiver:
    """Webhook receiver on 127.0.0.1: keeps every JSON body by path."""

    bodies: dict[str, list[Any]] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.bodies.setdefault(self.path, []).append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def alerting_stack(
    broker: str, tmp_path: Path, receiver: Receiver, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """A worker and an API whose alerts go to this test's receiver and its own topics."""
    base = receiver.start()
    stack = start_stack(broker, tmp_path, name=request.node.name, api=False)
    try:
        queues = tmp_path / "queues.yml"
        queues.write_text(QUEUES_YAML, encoding="utf-8")
        suffix = stack.env["CALLPULSE_APP_ID"]
        stack.env.update(
            {
                "CALLPULSE_QUEUES_CONFIG": str(queues),
                "CALLPULSE_ALERTS_TOPIC": f"alerts-{suffix}",
                "CALLPULSE_ALERTS_DLQ_TOPIC": f"alerts-dlq-{suffix}",
                "CALLPULSE_ALERTS_WEBHOOK_URLS": f"{base}/json",
                "CALLPULSE_ALERTS_SLACK_WEBHOOK_URLS": f"{base}/slack",
            }
        )
        stack.start_process("api", "api", "--port", str(stack.port))
        stack.wait_until(lambda: _ok(stack.url + "/readyz"), 60, "API ready")
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def prometheus(alerting_stack: Stack, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Alertmanager and Prometheus on free loopback ports; yields both base URLs."""
    am_port, prom_port = free_port(), free_port()
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"  # the same expressions, without minutes of waiting
    (tmp_path / "callpulse.rules.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")

    def loopback(port: int) -> list[dict[str, Any]]:
        return [{"targets": [f"127.0.0.1:{port}"]}]

    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["callpulse.rules.yml"],
        "alerting": {"alertmanagers": [{"static_configs": loopback(am_port)}]},
        "scrape_configs": [
            {"job_name": "callpulse", "static_configs": loopback(alerting_stack.port)}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(
            spawn(
                [
                    "prometheus-alertmanager",
                    f"--config.file={ALERTMANAGER_CONFIG}",
                    f"--storage.path={tmp_path / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                log_path=tmp_path / "alertmanager.log",
            )
        )
        processes.append(
            spawn(
                [
                    "prometheus",
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                log_path=tmp_path / "prometheus.log",
            )
        )
        urls = (f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}")
        for url, what in zip(urls, ("prometheus", "alertmanager"), strict=True):
            _wait(lambda u=url: _ok(u + "/-/ready"), 30, f"{what} ready", tmp_path / f"{what}.log")
        yield urls
    finally:
        for process in reversed(processes):
            stop_process(process, timeout_s=10)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(condition: Any, timeout_s: float, what: str, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


class Calls:
    """Answered calls for queue ``sales``, each offered ``wait_s`` before its answer."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def answered(self, count: int, wait_s: float) -> list[dict[str, Any]]:
        now_us = time.time_ns() // 1000
        batch = []
        for _ in range(count):
            n = len(self.events) // 2
            call = {"queue": "sales", "call_id": f"c{n}"}
            answered_us = now_us - 2 * US_PER_S
            offered_us = answered_us - round(wait_s * US_PER_S)
            offered = {"event_id": f"o{n}", "type": "call.offered", "ts": us_to_rfc3339(offered_us)}
            answered = {"event_id": f"a{n}", "type": "call.answered", "agent_id": "a1"}
            answered["ts"] = us_to_rfc3339(answered_us)
            batch += [offered | call, answered | call]
            self.events += batch[-2:]
        return batch


def post(stack: Stack, events: list[dict[str, Any]]) -> None:
    reply = httpx.post(stack.url + "/v1/events", content=orjson.dumps(events), timeout=10)
    assert reply.status_code == 202, reply.text


class StreamReader:
    """Collects the ``alert`` events of the SSE stream in a thread."""

    def __init__(self, url: str) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self.thread.start()

    def _read(self, url: str) -> None:
        # The stream ends when the API stops at the end of the test: not an error here.
        with (
            contextlib.suppress(httpx.HTTPError),
            httpx.stream("GET", url + "/v1/stream", timeout=None) as reply,
        ):
            kind = ""
            for line in reply.iter_lines():
                if self.stop.is_set():
                    return
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: ") and kind == "alert":
                    self.alerts.append(json.loads(line.removeprefix("data: ")))


def service_level_alerts(bodies: list[Any]) -> list[Any]:
    return [b for b in bodies if b.get("rule") == "service_level_low"]


def test_service_level_alert_reaches_alertmanager_and_webhooks_then_resolves(
    alerting_stack: Stack, prometheus: tuple[str, str], receiver: Receiver
) -> None:
    stack, (prometheus_url, alertmanager_url) = alerting_stack, prometheus
    calls = Calls()
    sse = StreamReader(stack.url)
    try:
        # One good call creates the queue's series; Prometheus needs them before the rise.
        post(stack, calls.answered(1, wait_s=1))
        _wait(
            lambda: _series(prometheus_url, 'callpulse_wait_seconds_count{queue="sales"}'),
            30,
            "Prometheus to scrape the sales wait histogram",
        )
        post(stack, calls.answered(12, wait_s=60))

        firing = _wait(lambda: _status(receiver.bodies.get("/json", []), "firing"), 30, "webhook")
        end_us = live_end_us(parse_ts_us(firing["at"]))
        reference = reference_kpis(
            calls.events, queue="sales", start_us=end_us - 900 * US_PER_S, end_us=end_us
        )
        assert firing["value"] == reference["service_level"] == pytest.approx(1 / 13)
        slack = receiver.bodies["/slack"]
        assert slack[0]["text"].startswith("[FIRING] sales: service level 7.7% over 15m")
        active = stack.get("/v1/alerts")["active"]
        assert [(a["queue"], a["rule"], a["status"]) for a in active] == [
            ("sales", "service_level_low", "firing")
        ]
        assert stack.metric_sum("callpulse_alerts_firing") == 1

        alert = _wait(lambda: _alertmanager_alert(alertmanager_url), 60, "Alertmanager")
        assert alert["labels"]["queue"] == "sales"
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["rule"] == "service_level_low"

        post(stack, calls.answered(80, wait_s=2))
        resolved = _wait(
            lambda: _status(receiver.bodies["/json"], "resolved"), 30, "the resolution"
        )
        assert resolved["id"] == firing["id"]
        assert resolved["value"] == pytest.approx(81 / 93)
        assert stack.get("/v1/alerts")["active"] == []
        _wait(lambda: len(sse.alerts) >= 3, 10, "the SSE alert events")
        assert [a["status"] for a in service_level_alerts(sse.alerts)] == [
            "pending",
            "firing",
            "resolved",
        ]
    finally:
        sse.stop.set()
    statuses = [b["status"] for b in service_level_alerts(receiver.bodies["/json"])]
    assert statuses == ["firing", "resolved"], "webhooks: one notification per transition"
    published = stack.consume(stack.env["CALLPULSE_ALERTS_TOPIC"], expected=3)
    assert [t["status"] for t in service_level_alerts(published)] == [
        "pending",
        "firing",
        "resolved",
    ]


def _status(bodies: list[Any], status: str) -> Any:
    return next((b for b in service_level_alerts(bodies) if b["status"] == status), None)


def _series(prometheus_url: str, query: str) -> bool:
    reply = httpx.get(prometheus_url + "/api/v1/query", params={"query": query}, timeout=5)
    return bool(reply.json()["data"]["result"])


def _alertmanager_alert(alertmanager_url: str) -> Any:
    alerts = httpx.get(alertmanager_url + "/api/v2/alerts", timeout=5).json()
    return next(
        (a for a in alerts if a["labels"].get("alertname") == "CallpulseServiceLevelLow"), None
    )


async def test_an_undeliverable_webhook_is_dead_lettered_to_kafka(broker: str) -> None:
    """Kafka gets the transition; the webhook nobody answers gets retries, then the DLQ."""
    closed = free_port()  # nothing listens there
    suffix = f"{time.time_ns()}"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        kafka_bootstrap=broker,
        kafka_acks="1",
        alerts_topic=f"alerts-{suffix}",
        alerts_dlq_topic=f"alerts-dlq-{suffix}",
        alerts_webhook_urls=f"http://127.0.0.1:{closed}/hook",
        alerts_retry_attempts=3,
        alerts_retry_initial_s=0.05,
    )
    service = AlertService.connected(settings, CentreConfig(), ReadModel())
    await service.start()
    try:
        assert service.notifier is not None
        transition = {"id": "sales/x/1", "sequence": 1, "queue": "sales", "status": "firing",
                      "rule": "x", "summary": "[FIRING] sales: x"}  # fmt: skip
        service.notifier.submit(transition)
        dead = await _consume(broker, settings.alerts_dlq_topic, 1)
        published = await _consume(broker, settings.alerts_topic, 1)
    finally:
        await service.stop()
    assert published == [transition]
    (letter,) = dead
    assert (letter["channel"], letter["attempts"]) == ("webhook-1", 3)
    assert letter["reason"].startswith("ConnectError")
    assert letter["transition"] == transition
    assert service.notifier.counts[("webhook-1", "retried")] == 2


async def _consume(bootstrap: str, topic: str, expected: int, timeout_s: float = 20) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(found) < expected and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                found += [orjson.loads(m.value) for m in messages]
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return found
