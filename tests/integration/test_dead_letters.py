"""Bad input never stops the worker and is never lost: it lands in the DLQ with its reason."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from tests.integration.stack import Stack

pytestmark = pytest.mark.broker


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _offered(event_id: str, call_id: str) -> dict[str, object]:
    return {
        "event_id": event_id,
        "type": "call.offered",
        "ts": _now(),
        "queue": "q1",
        "call_id": call_id,
    }


BAD_MESSAGES = [
    (b"{not json", "invalid_json"),  # truncated JSON
    (b"[1, 2]", "not_an_object"),  # an array of non-objects: two rejections
    (orjson.dumps({"event_id": "u1", "type": "call.teleported", "ts": 1}), "unknown_type"),
    (orjson.dumps({"event_id": "m1", "type": "call.offered", "ts": 1}), "missing_field"),
    (
        orjson.dumps(
            {
                "event_id": "w1",
                "type": "call.ended",
                "ts": _now(),
                "queue": "q1",
                "call_id": "c9",
                "agent_id": "a1",
                "talk_s": "long",
            }
        ),
        "wrong_type",
    ),
]


def test_invalid_events_go_to_the_dlq_and_valid_neighbours_count(stack: Stack) -> None:
    values = [value for value, _ in BAD_MESSAGES]
    # A micro-batch with one bad event between two good ones: the good ones still count.
    values.append(orjson.dumps([_offered("g1", "c1"), {"event_id": "x"}, _offered("g2", "c2")]))
    stack.produce(values)
    expected_reasons = sorted(
        [
            "invalid_json",
            "not_an_object",
            "not_an_object",
            "unknown_type",
            "missing_field",
            "wrong_type",
            "missing_field",
        ]
    )
    dead = stack.consume(stack.dlq_topic, expected=len(expected_reasons))
    assert sorted(d["reason"] for d in dead) == expected_reasons
    assert all(d["detail"] and d["source"] == "worker" for d in dead)
    in_batch = [d for d in dead if d.get("event") == {"event_id": "x"}]
    assert [d["index"] for d in in_batch] == [1], "the position inside the array is kept"
    assert any(d.get("raw", "").startswith("{not json") for d in dead), "raw input kept"

    # The worker kept going: a valid event after the garbage is processed.
    stack.produce([orjson.dumps(_offered("g3", "c3"))])
    stack.wait_until(
        lambda: stack.get("/v1/queues/q1/kpis", window="5m")["offered"] == 3,
        30,
        "three offered calls in q1",
    )
    stack.wait_until(
        lambda: stack.metric_sum("callpulse_events_invalid_total") == 7,
        30,
        "invalid events counted",
    )


def test_an_invalid_event_near_the_message_limit_goes_to_the_dlq_truncated(stack: Stack) -> None:
    # Just under the producer's 1 MiB limit as input; a dead-letter record holding it whole
    # (plus the reason) would pass it, and stage one would retry its batch for ever.
    big: dict[str, object] = {"event_id": "big1", "type": "call.offered", "ts": _now(), "note": ""}
    big["note"] = "x" * (1_048_400 - len(orjson.dumps(big)))
    stack.produce([orjson.dumps(big), orjson.dumps(_offered("after-big", "c1"))])
    [dead] = stack.consume(stack.dlq_topic, expected=1)
    assert dead["reason"] == "missing_field"
    assert dead["truncated_from_bytes"] == len(orjson.dumps(big))
    assert dead["raw"].startswith('{"event_id":"big1"')
    stack.wait_until(
        lambda: stack.get("/v1/queues/q1/kpis", window="5m")["offered"] == 1,
        30,
        "the valid event after the big one counted",
    )


def test_http_ingest_reports_each_invalid_event_and_keeps_the_rest(stack: Stack) -> None:
    body = b"\n".join(
        [
            orjson.dumps(_offered("h1", "c1")),
            b"{oops",
            orjson.dumps(
                {
                    "event_id": "h2",
                    "type": "call.answered",
                    "ts": _now(),
                    "queue": "q1",
                    "call_id": "c1",
                }
            ),  # agent_id missing
            orjson.dumps(_offered("h3", "c2")),
        ]
    )
    reply = httpx.post(
        f"{stack.url}/v1/events",
        content=body,
        headers={"content-type": "application/x-ndjson"},
        timeout=10,
    )
    assert reply.status_code == 422
    answer = reply.json()
    assert answer["accepted"] == 2
    assert [(e["index"], e["reason"]) for e in answer["errors"]] == [
        (1, "invalid_json"),
        (2, "missing_field"),
    ]
    assert "agent_id" in answer["errors"][1]["detail"]
    # the error shape every 4xx has, besides the per-event detail
    assert answer["error"] == "invalid_events"
    assert answer["message"].startswith("2 of 4 event(s) refused, 2 accepted; first, event 1:")
    dead = stack.consume(stack.dlq_topic, expected=2)
    assert sorted(d["source"] for d in dead) == ["api", "api"]
    stack.wait_until(lambda: stack.get("/v1/queues/q1/kpis", window="5m")["offered"] == 2, 30)


def test_oversized_body_is_refused_with_413(stack: Stack) -> None:
    limit = 5 * 1024 * 1024
    reply = httpx.post(
        f"{stack.url}/v1/events",
        content=b"[" + b" " * limit + b"]",
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert reply.status_code == 413
    assert reply.json()["error"] == "payload_too_large"
    time.sleep(0.1)
