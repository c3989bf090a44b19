"""Webhook delivery to a real HTTP server: bodies, retries with backoff, dead letters, order."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from api.alerts.delivery import Notifier, RetryPolicy, WebhookChannel, redacted
from api.alerts.engine import Transition


class Receiver:
    """A webhook receiver on 127.0.0.1: answers each POST with the next scripted status."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.script: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/secret-token"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def statuses(self) -> list[str]:
        return [body["status"] for body in self.bodies]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    running.thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as made:
        yield made


class Recorder:
    """What the notifier did instead of sleeping, and the dead letters it wrote."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self.dead: list[dict[str, Any]] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    async def dead_letter(self, record: dict[str, Any]) -> None:
        self.dead.append(record)


def transition(status: str = "firing", n: int = 1) -> Transition:
    return {"id": f"sales/service_level_low/{n}", "sequence": n, "queue": "sales", "status": status,
            "summary": f"[{status.upper()}] sales: service level 50.0% over 15m"}  # fmt: skip


def notifier(channel: WebhookChannel, recorder: Recorder, attempts: int = 4) -> Notifier:
    policy = RetryPolicy(attempts=attempts, initial_s=0.5, max_s=60)
    return Notifier([channel], policy, recorder.dead_letter, sleep=recorder.sleep)


async def test_json_and_slack_bodies(receiver: Receiver, client: httpx.AsyncClient) -> None:
    recorder = Recorder()
    for style in ("json", "slack"):
        channel = WebhookChannel(style, receiver.url, style, lambda: client)
        assert await notifier(channel, recorder).deliver(channel, transition())
    assert receiver.bodies == [
        transition(),
        {"text": "[FIRING] sales: service level 50.0% over 15m"},
    ]


@pytest.mark.parametrize(
    ("script", "delivered", "tries", "slept", "reason"),
    [
        ([], True, 1, [], None),  # first try
        ([500, 503], True, 3, [0.5, 1.0], None),  # two failures, backoff doubles
        ([429, 408, 502], True, 4, [0.5, 1.0, 2.0], None),  # busy / timeout: retried too
        ([500, 500, 500, 500], False, 4, [0.5, 1.0, 2.0], "HTTP 500"),  # last try failed
        ([404], False, 1, [], "HTTP 404"),  # refused for good: no retry
        ([500, 400], False, 2, [0.5], "HTTP 400"),  # a retry refused for good stops there
    ],
)
async def test_retries_backoff_and_dead_letters(
    receiver: Receiver,
    client: httpx.AsyncClient,
    script: list[int],
    delivered: bool,
    tries: int,
    slept: list[float],
    reason: str | None,
) -> None:
    receiver.script = list(script)
    recorder = Recorder()
    channel = WebhookChannel("webhook-1", receiver.url, "json", lambda: client)
    sender = notifier(channel, recorder)
    assert await sender.deliver(channel, transition()) is delivered
    assert len(receiver.bodies) == tries
    assert recorder.slept == slept
    if reason is None:
        assert recorder.dead == []
        assert sender.counts[("webhook-1", "delivered")] == 1
    else:
        (dead,) = recorder.dead
        assert (dead["channel"], dead["reason"], dead["attempts"]) == ("webhook-1", reason, tries)
        assert dead["transition"] == transition()
        assert sender.counts[("webhook-1", "dead_lettered")] == 1


async def test_an_unreachable_receiver_is_dead_lettered(client: httpx.AsyncClient) -> None:
    closed = Receiver()  # bound, never served, then closed: connections are refused
    url = closed.url
    closed.server.server_close()
    recorder = Recorder()
    channel = WebhookChannel("webhook-1", url, "json", lambda: client)
    assert not await notifier(channel, recorder, attempts=3).deliver(channel, transition())
    assert recorder.slept == [0.5, 1.0]
    assert recorder.dead[0]["reason"].startswith("ConnectError")


async def test_order_is_kept_and_webhooks_hear_only_firing_and_resolved(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    receiver.script = [500, 500]  # the firing needs three tries; the resolution must wait
    recorder = Recorder()
    channel = WebhookChannel("webhook-1", receiver.url, "json", lambda: client)
    sender = notifier(channel, recorder)
    sender.start()
    for n, status in enumerate(("pending", "firing", "resolved", "pending", "cancelled"), 1):
        sender.submit(transition(status, n))
    await sender.stop()  # drains what is queued
    assert receiver.statuses() == ["firing", "firing", "firing", "resolved"]
    assert sender.counts == {("webhook-1", "retried"): 2, ("webhook-1", "delivered"): 2}


@pytest.mark.parametrize(
    ("policy", "delays"),
    [
        (RetryPolicy(5, 1.0, 60.0), [1.0, 2.0, 4.0, 8.0]),  # doubling
        (RetryPolicy(7, 1.0, 10.0), [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]),  # capped at max_s
        (RetryPolicy(1, 1.0, 60.0), []),  # a single try: no pause
    ],
)
def test_backoff_delays(policy: RetryPolicy, delays: list[float]) -> None:
    assert policy.delays_s() == delays


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com"),  # token path
        ("http://user:pw@example.com:8080/x?key=1", "http://example.com:8080"),  # credentials
    ],
)
def test_urls_in_logs_and_dead_letters_hide_secrets(url: str, shown: str) -> None:
    assert redacted(url) == shown


async def test_stop_gives_up_on_a_receiver_that_never_answers(client: httpx.AsyncClient) -> None:
    """A shutdown waits a moment for queued transitions, not forever."""
    recorder = Recorder()

    async def slow_sleep(seconds: float) -> None:
        await asyncio.sleep(3600)

    channel = WebhookChannel("webhook-1", "http://127.0.0.1:9/", "json", lambda: client)
    policy = RetryPolicy(3, 1, 1)
    sender = Notifier([channel], policy, recorder.dead_letter, sleep=slow_sleep, drain_s=0.2)
    sender.start()
    sender.submit(transition())
    await asyncio.wait_for(sender.stop(), 2)
