"""Every KPI the API serves equals an independent reference computed from the raw events.

The stream is delivered the way real feeds are: duplicated, reordered within 30 s, half
through ``POST /v1/events`` and half straight into Kafka one event per message with no key
(so correctness cannot lean on the key), while a real worker and API run against the
embedded broker.
"""

from __future__ import annotations

import math
import time
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.stack import Stack
from tests.reference import parse_ts_us, reference_agent_kpis, reference_kpis
from tests.streamgen import duplicate_and_reorder, generate_history

pytestmark = pytest.mark.broker

US = 1_000_000
QUEUES = ("sales", "support")
COUNT_FIELDS = (
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "exited",
    "answered_in_threshold",
    "transferred",
    "calls_waiting",
)


@pytest.fixture(scope="module")
def history() -> dict[str, Any]:
    now_us = int(time.time() * US)
    start_us = now_us - 50 * 60 * US
    events = generate_history(
        7, start_us=start_us, duration_s=45 * 60, queues=QUEUES, calls=400, agents=10
    )
    delivered = duplicate_and_reorder(events, seed=11, duplicate_fraction=0.25)
    return {"events": events, "delivered": delivered, "now_us": now_us}


def _deliver(stack: Stack, delivered: list[dict[str, Any]]) -> None:
    half = len(delivered) // 2
    via_http, via_kafka = delivered[:half], delivered[half:]
    for start in range(0, len(via_http), 200):
        reply = httpx.post(f"{stack.url}/v1/events", json=via_http[start : start + 200], timeout=30)
        assert reply.status_code == 202, reply.text
    stack.produce([orjson.dumps(event) for event in via_kafka])
    stack.wait_processed(len(delivered))


def _assert_same(
    served: dict[str, Any], expected: dict[str, Any], where: str, live: bool | None = None
) -> None:
    # A window ending after now (live, or an interval still running) measures ages, time in
    # state and arrival rates up to now, which moves between the request and the reference
    # (computed with `now_us` taken right after it): those agree to 1 % or 2 s.
    if live is None:
        live = parse_ts_us(served["end"]) > time.time() * US
    for name, want in expected.items():
        got = served[name]
        if isinstance(want, dict):
            assert isinstance(got, dict) and got.keys() == want.keys(), f"{where}: {name}"
            _assert_same(got, want, f"{where}.{name}", live)
        elif name in COUNT_FIELDS or not isinstance(want, float):
            assert got == want, f"{where}: {name} served {got!r}, reference {want!r}"
        elif want is None or got is None:
            assert got is want, f"{where}: {name} served {got!r}, reference {want!r}"
        else:
            rel, absolute = (1e-2, 2.0) if live else (1e-6, 1e-6)
            assert math.isclose(got, want, rel_tol=rel, abs_tol=absolute), (
                f"{where}: {name} served {got!r}, reference {want!r}"
            )


def _now_us() -> int:
    return int(time.time() * US)


def test_every_field_every_window_equals_reference(stack: Stack, history: dict[str, Any]) -> None:
    _deliver(stack, history["delivered"])
    events, now_us = history["events"], history["now_us"]
    ats = [None, now_us - 7 * 60 * US - 13 * US, now_us - 21 * 60 * US, now_us - 33 * 60 * US]
    checked = 0
    for at_us in ats:
        at = None if at_us is None else _rfc3339(at_us)
        for window in ("5m", "15m", "30m", "1h", "today"):
            params = {"window": window} | ({"at": at} if at else {})
            centre, centre_at_us = stack.get_at_second("/v1/kpis", **params)
            start_us, end_us = parse_ts_us(centre["start"]), parse_ts_us(centre["end"])
            assert centre["window"] == window
            served = {item["queue"]: item for item in centre["queues"]}
            assert set(QUEUES) <= set(served)
            for queue in QUEUES:
                one, at_second_us = stack.get_at_second(f"/v1/queues/{queue}/kpis", **params)
                _assert_close_listing(one, served[queue])
                expected = reference_kpis(
                    events, queue=queue, start_us=start_us, end_us=end_us, now_us=at_second_us
                )
                _assert_same(one, expected, f"{queue} {window} at={at}")
                checked += 1
            total = reference_kpis(
                events, queue=None, start_us=start_us, end_us=end_us, now_us=centre_at_us
            )
            _assert_same(centre["total"], total, f"total {window} at={at}")
    assert checked == len(ats) * 5 * len(QUEUES)


@pytest.mark.parametrize("threshold_s", [5, 20, 60])  # each a whole-second threshold
def test_threshold_parameter_equals_reference(
    stack: Stack, history: dict[str, Any], threshold_s: int
) -> None:
    _deliver(stack, history["delivered"])
    served, at_second_us = stack.get_at_second(
        "/v1/queues/sales/kpis", window="1h", threshold_s=threshold_s
    )
    expected = reference_kpis(
        history["events"],
        queue="sales",
        start_us=parse_ts_us(served["start"]),
        end_us=parse_ts_us(served["end"]),
        threshold_s=threshold_s,
        now_us=at_second_us,
    )
    _assert_same(served, expected, f"threshold {threshold_s}")
    assert served["service_level_threshold_s"] == threshold_s


def test_agents_and_intervals_equal_reference(stack: Stack, history: dict[str, Any]) -> None:
    _deliver(stack, history["delivered"])
    events = history["events"]
    agent_ids = sorted({e["agent_id"] for e in events if e["type"] == "call.answered"})
    assert agent_ids, "the generated history has answered calls"
    listing = {a["agent_id"] for a in stack.get("/v1/agents")["agents"]}
    assert set(agent_ids) <= listing
    for agent_id in agent_ids:
        served = stack.get(f"/v1/agents/{agent_id}/kpis", window="1h")
        expected = reference_agent_kpis(
            events,
            agent_id=agent_id,
            start_us=parse_ts_us(served["start"]),
            end_us=parse_ts_us(served["end"]),
            now_us=_now_us(),
        )
        _assert_same(served, expected, f"agent {agent_id}")
    end_us = history["now_us"]
    start_us = end_us - 60 * 60 * US
    intervals, at_second_us = stack.get_at_second(
        "/v1/queues/support/intervals", size="15m", start=_rfc3339(start_us), end=_rfc3339(end_us)
    )
    assert len(intervals) >= 4
    for item in intervals:
        expected = reference_kpis(
            events,
            queue="support",
            start_us=parse_ts_us(item["start"]),
            end_us=parse_ts_us(item["end"]),
            now_us=at_second_us,
        )
        assert parse_ts_us(item["end"]) - parse_ts_us(item["start"]) == 15 * 60 * US
        _assert_same(item, expected, f"interval {item['start']}")


def _assert_close_listing(one: dict[str, Any], listed: dict[str, Any]) -> None:
    """One queue's answer equals its entry in the centre listing; live figures (ages, time in
    state) move between the two requests, so floats agree to 0.1 %."""
    assert one.keys() == listed.keys()
    for name, value in one.items():
        other = listed[name]
        if isinstance(value, float) and isinstance(other, float):
            assert math.isclose(value, other, rel_tol=1e-3, abs_tol=0.5), name
        else:
            assert value == other, f"one queue and the centre listing disagree on {name}"


def _rfc3339(ts_us: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts_us / US, UTC).isoformat()
