"""The real worker and API with tokens and a pseudonym key: who gets in, and what is stored.

Events with raw callers arrive both ways (POST /v1/events and straight into Kafka, as a PBX
adapter would write them); afterwards every topic callpulse writes, and both processes' logs,
are read back byte for byte: no raw caller anywhere, and one pseudonym per caller.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from callpulse.tokens import entry_for
from tests.integration.stack import STARTUP_TIMEOUT_S, Stack, _ready, start_stack

pytestmark = pytest.mark.broker

KEY = "integration-test-pseudonym-key-0123456789"
READ_TOKEN = "cp_integration-read-0123456789abcdefghijklmnopqrstuv"
INGEST_TOKEN = "cp_integration-ingest-0123456789abcdefghijklmnopqrs"
# Numbers from ranges reserved for fiction: a leak here leaks nobody.
RAW_A = "+441632960001"
RAW_B = "+12025550143"
QUIET_S = 3.0


class Record(NamedTuple):
    key: bytes
    value: bytes


def pseudonym(caller: str) -> str:
    return "ph1:" + hmac.new(KEY.encode(), caller.encode(), hashlib.sha256).hexdigest()[:32]


@pytest.fixture
def secured(broker: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    stack = start_stack(broker, tmp_path, request.node.name, api=False, worker=False)
    stack.env.pop("CALLPULSE_INSECURE")
    stack.env["CALLPULSE_TOKENS"] = ",".join(
        [entry_for(READ_TOKEN, ["read"]).line, entry_for(INGEST_TOKEN, ["ingest"]).line]
    )
    stack.env["CALLPULSE_PSEUDONYM_KEY"] = KEY
    try:
        stack.start_process("worker", "worker")
        stack.start_process("api", "api", "--port", str(stack.port))
        stack.wait_until(lambda: _ready(stack.url), STARTUP_TIMEOUT_S, "API ready")
        yield stack
    finally:
        stack.stop()


def offered(event_id: str, queue: str, caller: str) -> dict[str, object]:
    return {"event_id": event_id, "type": "call.offered", "ts": time.time(), "queue": queue,
            "call_id": event_id, "caller": caller}  # fmt: skip


def test_tokens_and_pseudonyms_end_to_end(secured: Stack) -> None:
    url = secured.url
    assert httpx.get(f"{url}/v1/kpis", timeout=10).status_code == 401
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    read = {"Authorization": f"Bearer {READ_TOKEN}"}
    ingest = {"Authorization": f"Bearer {INGEST_TOKEN}"}
    body = orjson.dumps([offered("h1", "api", RAW_A), offered("h2", "api", RAW_B)])
    assert httpx.post(f"{url}/v1/events", content=body, headers=read, timeout=10).status_code == 403
    reply = httpx.post(f"{url}/v1/events", content=body, headers=ingest, timeout=10)
    assert (reply.status_code, reply.json()) == (202, {"accepted": 2})
    # A producer writing raw callers itself; one invalid event to reach the dead-letter topic.
    secured.produce(
        [
            orjson.dumps([offered("k1", "direct", RAW_A), offered("k2", "direct", RAW_B)]),
            orjson.dumps({**offered("k3", "direct", RAW_A), "call_id": 3}),
        ]
    )
    secured.wait_processed(4)
    secured.wait_until(lambda: secured.metric_sum("callpulse_events_invalid_total") >= 1)
    kpis = httpx.get(f"{url}/v1/queues/direct/kpis", headers=read, timeout=10).json()
    assert kpis["offered"] == 2

    topics = asyncio.run(_read_topics(secured))
    written = {name: values for name, values in topics.items() if name != secured.events_topic}
    assert secured.env["CALLPULSE_APP_ID"] + "-routed-events" in written
    assert secured.dlq_topic in written
    # The input topic is the producers'; callpulse's own ingest must have written pseudonyms.
    written["ingest"] = [r for r in topics[secured.events_topic] if r.key == b"api"]
    assert len(written["ingest"]) >= 1
    logs = {name: [Record(b"", secured.log(name).encode())] for name in ("worker", "api")}
    for where, records in [*written.items(), *logs.items()]:
        for record in records:
            for raw in (RAW_A, RAW_B, RAW_A[1:], RAW_B[1:]):
                assert raw.encode() not in record.key + b" " + record.value, f"raw in {where}"

    routed = [
        event
        for record in written[secured.env["CALLPULSE_APP_ID"] + "-routed-events"]
        for event in orjson.loads(record.value)
    ]
    callers = {event["event_id"]: event["caller"] for event in routed}
    # Same caller, same pseudonym, whichever way the event came; hashed once, not twice.
    assert callers["h1"] == callers["k1"] == pseudonym(RAW_A)
    assert callers["h2"] == callers["k2"] == pseudonym(RAW_B)
    [dead] = [orjson.loads(r.value) for r in written[secured.dlq_topic]]
    assert dead["event"]["caller"] == pseudonym(RAW_A)


async def _read_topics(stack: Stack) -> dict[str, list[Record]]:
    """Every message of the input, dead-letter and app topics, keys and values together."""
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    await admin.start()
    try:
        names = [
            name
            for name in await admin.list_topics()
            if name.startswith(stack.env["CALLPULSE_APP_ID"] + "-")
            or name in (stack.events_topic, stack.dlq_topic)
        ]
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        *names,
        bootstrap_servers=stack.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: dict[str, list[Record]] = {name: [] for name in names}
    try:
        # Everything was written before this starts: read until the topics stay quiet.
        deadline = time.monotonic() + 30
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < QUIET_S:
            batches = await consumer.getmany(timeout_ms=300)
            for tp, messages in batches.items():
                found[tp.topic].extend(Record(m.key or b"", m.value or b"") for m in messages)
            if batches:
                quiet_since = time.monotonic()
    finally:
        await consumer.stop()
    return found
