"""Start callpulse's worker and API as real processes against a broker, and talk to them."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from callpulse.broker import free_port
from callpulse.process import spawn, stop_process

STARTUP_TIMEOUT_S = 60.0


@dataclass
class Stack:
    bootstrap: str
    env: dict[str, str]
    port: int
    log_dir: Path
    processes: dict[str, Any] = field(default_factory=dict)
    # One client for every request: httpx.get builds a client (and its TLS context) per call,
    # about 0.25 s each, which dominated tests that read many figures.
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def events_topic(self) -> str:
        return self.env["CALLPULSE_EVENTS_TOPIC"]

    @property
    def dlq_topic(self) -> str:
        return self.env["CALLPULSE_DLQ_TOPIC"]

    def start_process(self, name: str, *args: str) -> None:
        argv = [sys.executable, "-m", "callpulse", *args]
        self.processes[name] = spawn(argv, env=self.env, log_path=self.log_dir / f"{name}.log")

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            stop_process(process, timeout_s=15.0)
        self.http.close()

    def kill(self, name: str) -> int:
        """SIGKILL, as a crash would: no shutdown, no final commit or flush. Returns its pid."""
        process = self.processes.pop(name)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        return int(process.pid)

    def rss_kib(self, name: str) -> int:
        """Resident memory of one of the processes (``VmRSS`` of /proc/PID/status), in KiB."""
        status = Path(f"/proc/{self.processes[name].pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1])

    def counted_events(self) -> float:
        """Valid events counted once: processed minus duplicates. A replay after a crash adds
        to both, so this reaches the number of distinct events exactly when all are in."""
        text = self.metrics_text()  # one scrape for both: a scrape is not free on a big view
        processed = self.metric_sum("callpulse_events_processed_total", text)
        return processed - self.metric_sum("callpulse_events_duplicate_total", text)

    def wait_counted(self, count: int, timeout_s: float = 90.0) -> None:
        self.wait_until(
            lambda: self.counted_events() >= count, timeout_s, f"{count} distinct events counted"
        )

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def get(self, path: str, **params: Any) -> Any:
        reply = self.http.get(self.url + path, params=params)
        reply.raise_for_status()
        return reply.json()

    def metrics_text(self) -> str:
        return self.http.get(self.url + "/metrics").text

    def metric_sum(self, name: str, text: str | None = None) -> float:
        """Sum of every sample of one metric family in /metrics (or in ``text``, scraped)."""
        text = self.metrics_text() if text is None else text
        pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
        return sum(float(value) for value in pattern.findall(text))

    def wait_until(self, condition: Any, timeout_s: float = 60.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except httpx.HTTPStatusError:
                pass  # e.g. 404 until the first event of a queue arrives
            except httpx.TransportError:
                pass  # e.g. an API process still starting
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise AssertionError(f"{name} died:\n{self.log(name)[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what or condition}")

    def wait_processed(self, count: int, timeout_s: float = 90.0) -> None:
        """Until the workers have processed ``count`` valid events (duplicates included)."""
        self.wait_until(
            lambda: self.metric_sum("callpulse_events_processed_total") >= count,
            timeout_s,
            f"{count} events processed",
        )

    def produce(
        self,
        values: Sequence[bytes],
        keys: Sequence[bytes | None] | None = None,
        topic: str | None = None,
    ) -> None:
        asyncio.run(_produce(self.bootstrap, topic or self.events_topic, values, keys))

    def consume(self, topic: str, expected: int, timeout_s: float = 30.0) -> list[Any]:
        return asyncio.run(_consume(self.bootstrap, topic, expected, timeout_s))


def start_stack(
    bootstrap: str,
    tmp_path: Path,
    name: str,
    *,
    api: bool = True,
    worker: bool = True,
    partitions: int = 4,
) -> Stack:
    suffix = re.sub(r"[^a-zA-Z0-9]+", "-", name)[-40:].strip("-") + f"-{os.getpid()}"
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "CALLPULSE_KAFKA_BOOTSTRAP": bootstrap,
            "CALLPULSE_KAFKA_ACKS": "1",
            "CALLPULSE_KAFKA_SESSION_TIMEOUT_S": "4.0",
            "CALLPULSE_KAFKA_HEARTBEAT_INTERVAL_S": "1.0",
            "CALLPULSE_PARTITIONS": str(partitions),
            "CALLPULSE_APP_ID": f"cp-{suffix}",
            "CALLPULSE_EVENTS_TOPIC": f"events-{suffix}",
            "CALLPULSE_DLQ_TOPIC": f"dlq-{suffix}",
            "CALLPULSE_LOG_LEVEL": "info",
            # Open API and the public pseudonym key, as in `callpulse dev`; the security tests
            # set tokens and a key themselves (tests/integration/test_security.py).
            "CALLPULSE_INSECURE": "true",
        }
    )
    stack = Stack(bootstrap, env, port, tmp_path)
    if worker:
        stack.start_process("worker", "worker")
    if api:
        stack.start_process("api", "api", "--port", str(port))
        stack.wait_until(lambda: _ready(stack.url), STARTUP_TIMEOUT_S, "API ready")
    return stack


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def _produce(
    bootstrap: str, topic: str, values: Sequence[bytes], keys: Sequence[bytes | None] | None
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    await producer.start()
    try:
        pending = [
            await producer.send(topic, value, key=keys[i] if keys else None)
            for i, value in enumerate(values)
        ]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, expected: int, timeout_s: float) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        metadata_max_age_ms=1000,
    )
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(found) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                found.extend(orjson.loads(m.value) for m in messages)
    finally:
        await consumer.stop()
    return found
