"""The webhook endpoints: answers, refusals, envelopes, limits, token carriers and metrics.

The app is the real one (``create_app``); only the sink is a list, in place of Kafka (the
integration test sends the same requests through a real broker).
"""

from __future__ import annotations

import base64
import gzip
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from api.services import Services
from callpulse.adapters.core import Event, Refusal
from callpulse.settings import Settings
from callpulse.tokens import entry_for, new_token
from stream.kpi.config import CentreConfig
from tests.unit.apifixtures import TestClient, client_for

CONFIG = Path(__file__).parents[1] / "data" / "generic" / "adapters.yaml"
RECORDS = Path(__file__).parents[1] / "data" / "amazon_connect" / "contact-records.ndjson"


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.refusals: list[tuple[str, Refusal]] = []

    async def send(
        self, events: Sequence[Event], refusals: Sequence[Refusal], *, source: str
    ) -> None:
        self.events += events
        self.refusals += [(source, r) for r in refusals]


def make_client(**settings: Any) -> tuple[TestClient, RecordingSink]:
    services = Services(
        settings=Settings(adapters_config=CONFIG, **settings), centre=CentreConfig()
    )
    client = client_for(services)
    sink = RecordingSink()
    client.app.state.webhooks.sink = sink  # type: ignore[attr-defined]
    return client, sink


@pytest.fixture
def client() -> Iterator[tuple[TestClient, RecordingSink]]:
    made = make_client()
    with made[0]:
        yield made


def canceled(now_s: float, **fields: str) -> dict[str, str]:
    return {
        "Sid": "EV" + "0" * 32,
        "EventType": "task.canceled",
        "Timestamp": str(int(now_s)),
        "TaskSid": "WT" + "1" * 32,
        "TaskQueueName": "Sales",
        "TaskAge": "35",
        "TaskCanceledReason": "hangup",
    } | fields


def fresh_record(index: int) -> dict[str, Any]:
    """A fixture contact record moved to the last hour (older ones are refused as too old)."""
    text = RECORDS.read_text().splitlines()[index]
    now = time.strftime("%Y-%m-%dT%H", time.gmtime(time.time() - 3600))
    return dict(json.loads(text.replace("2024-03-01T09", now)))


def test_a_twilio_form_callback(client: tuple[TestClient, RecordingSink]) -> None:
    http, sink = client
    reply = http.post("/v1/webhooks/twilio", data=canceled(time.time()))
    assert reply.status_code == 202, reply.text
    assert reply.json() == {"inputs": 1, "events": 1, "skipped": {}}
    assert [(e["type"], e["wait_s"]) for e in sink.events] == [("call.abandoned", 35)]


def test_a_refused_payload_is_listed_and_its_neighbours_still_count(
    client: tuple[TestClient, RecordingSink],
) -> None:
    http, sink = client
    broken = fresh_record(0) | {"Queue": {"Name": "Billing"}}  # no EnqueueTimestamp
    body = [fresh_record(0), broken, fresh_record(2)]  # answered, refused, never queued
    reply = http.post("/v1/webhooks/amazon-connect", json=body)
    assert reply.status_code == 422
    answer = reply.json()
    assert answer["error"] == "unmappable"
    assert answer["refused"] == [
        {
            "index": 1,
            "reason": "unmappable",
            "problems": ["field 'Queue.EnqueueTimestamp' is required"],
        }
    ]
    assert (answer["inputs"], answer["events"], answer["skipped"]) == (3, 4, {"not_queued": 1})
    assert "1 of 3 payload(s) refused" in answer["message"]
    # The refused record goes to the dead-letter topic without its content.
    [(source, refusal)] = sink.refusals
    assert source == "webhook:amazon-connect"
    assert refusal.raw is not None and "+447700900" not in refusal.raw
    assert {e["type"] for e in sink.events} == {
        "call.offered",
        "call.answered",
        "call.ended",
        "call.wrapup_ended",
    }


def test_a_contract_violation_refuses_the_whole_payload(
    client: tuple[TestClient, RecordingSink],
) -> None:
    http, sink = client
    old = canceled(time.time() - 30 * 86400)  # a month ago: beyond the retention
    reply = http.post("/v1/webhooks/twilio", json=old)
    assert reply.status_code == 422
    assert reply.json()["refused"][0]["reason"] == "too_old"
    assert sink.events == []


def test_a_firehose_delivery(client: tuple[TestClient, RecordingSink]) -> None:
    http, sink = client
    records = [fresh_record(0), fresh_record(1)]
    delivery = {
        "requestId": "ed4acda5-034f-9f42-bba1-f29aea6d7d8f",
        "timestamp": int(time.time() * 1000),
        "records": [{"data": base64.b64encode(json.dumps(r).encode()).decode()} for r in records],
    }
    reply = http.post(
        "/v1/webhooks/amazon-connect",
        content=gzip.compress(json.dumps(delivery).encode()),  # Firehose may gzip its bodies
        headers={
            "content-type": "application/json",
            "content-encoding": "gzip",
            "x-amz-firehose-request-id": delivery["requestId"],
        },
    )
    # Firehose wants a 200 echoing its request id.
    assert reply.status_code == 200, reply.text
    assert reply.json()["requestId"] == delivery["requestId"]
    assert len(sink.events) == 6


def test_a_generic_batch_and_an_unknown_mapping(client: tuple[TestClient, RecordingSink]) -> None:
    http, sink = client
    now_ms = int(time.time() * 1000)
    item = {"evt": "queued", "uuid": "u1", "at": now_ms, "campaign": {"name": "renewals"},
            "call": {"id": "c1"}}  # fmt: skip
    batch = {"batch": [item, {"evt": "heartbeat"}]}
    reply = http.post("/v1/webhooks/generic/acme-dialler", json=batch)
    assert reply.status_code == 202, reply.text
    assert reply.json() == {"inputs": 2, "events": 1, "skipped": {"heartbeat": 1}}
    assert [(e["type"], e["queue"], e["channel"]) for e in sink.events] == [
        ("call.offered", "renewals", "voice")
    ]
    missing = http.post("/v1/webhooks/generic/nobody", json=batch)
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "empty"),  # nothing posted
        (b"{not json", "not valid JSON"),  # broken JSON
        (b"[1]", "object"),  # JSON, but no callback in it
    ],
)
def test_unreadable_bodies_are_refused(
    client: tuple[TestClient, RecordingSink], body: bytes, problem: str
) -> None:
    http, _ = client
    reply = http.post(
        "/v1/webhooks/twilio", content=body, headers={"content-type": "application/json"}
    )
    assert reply.status_code == 422
    assert problem in reply.json()["message"]


def test_bodies_are_size_limited_after_decompression_too() -> None:
    http, _ = make_client(max_body_bytes=2048)
    with http:
        big = json.dumps([canceled(time.time())] * 100).encode()
        assert http.post("/v1/webhooks/twilio", content=big).status_code == 413
        squeezed = gzip.compress(big)
        assert len(squeezed) < 2048
        reply = http.post(
            "/v1/webhooks/twilio", content=squeezed, headers={"content-encoding": "gzip"}
        )
        assert reply.status_code == 413


def test_refusals_and_skips_are_counted_in_metrics(
    client: tuple[TestClient, RecordingSink],
) -> None:
    http, _ = client
    http.post("/v1/webhooks/twilio", data=canceled(time.time()))
    http.post("/v1/webhooks/twilio", data={"Sid": "EV1"})  # no EventType: refused
    http.post("/v1/webhooks/twilio", data=canceled(time.time(), EventType="workflow.timeout"))
    text = http.get("/metrics").text
    for outcome in ("mapped", "refused", "skipped"):
        assert f'callpulse_adapter_inputs_total{{adapter="twilio",outcome="{outcome}"}} 1.0' in text
    assert 'callpulse_adapter_events_total{adapter="twilio"} 1.0' in text


def test_each_sender_gives_the_token_its_own_way() -> None:
    ingest, read = new_token(), new_token()
    tokens = [entry_for(ingest, ["ingest"]).line, entry_for(read, ["read"]).line]
    http, _ = make_client(tokens=tokens)
    body = canceled(time.time())
    basic = base64.b64encode(f"twilio:{ingest}".encode()).decode()
    with http:
        post = http.post
        assert post("/v1/webhooks/twilio", data=body).status_code == 401
        bearer = {"authorization": f"Bearer {ingest}"}
        assert post("/v1/webhooks/twilio", data=body, headers=bearer).status_code == 202
        # Twilio: https://twilio:<token>@host/v1/webhooks/twilio
        basic_auth = {"authorization": f"Basic {basic}"}
        assert post("/v1/webhooks/twilio", data=body, headers=basic_auth).status_code == 202
        # Firehose: the access key of the HTTP endpoint destination
        firehose = {"x-amz-firehose-access-key": ingest}
        assert post("/v1/webhooks/twilio", data=body, headers=firehose).status_code == 202
        wrong_scope = {"authorization": f"Bearer {read}"}
        assert post("/v1/webhooks/twilio", data=body, headers=wrong_scope).status_code == 403
        not_basic = {"authorization": f"Basic {ingest}"}  # not base64 of user:password
        assert post("/v1/webhooks/twilio", data=body, headers=not_basic).status_code == 401
