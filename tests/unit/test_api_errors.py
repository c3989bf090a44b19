"""Every error is JSON ``{"error": <code>, "message": <what is wrong>}`` with the right status.

The app here has no publisher (ingest answers 503) and a 2 KiB body limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from callpulse.settings import Settings
from tests.unit.apifixtures import (
    T0_US,
    TestClient,
    build_services,
    client_for,
    iso,
    s,
    scenario_events,
)

BODY_LIMIT = 2048
RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z")
AT = "2024-03-01T10:10:00Z"
INTERVALS = "/v1/queues/sales/intervals"


@pytest.fixture(scope="module")
def client() -> TestClient:
    services = build_services(
        scenario_events(), now_us=T0_US + s(3600), settings=Settings(max_body_bytes=BODY_LIMIT)
    )
    return client_for(services, raise_server_exceptions=False)


def assert_error(response: httpx.Response, status: int, code: str, *names: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    for name in names:
        assert name in body["message"], f"{name!r} not named in {body['message']!r}"
    return body


@pytest.mark.parametrize(
    ("path", "params", "names"),
    [
        ("/v1/queues/nope/kpis", {}, ["nope"]),
        ("/v1/queues/nope/intervals", {}, ["nope"]),
        ("/v1/agents/nobody/kpis", {}, ["nobody"]),
        ("/v1/agents/a1/kpis/extra", {}, []),  # no such route
        ("/v2/kpis", {}, []),
    ],
)
def test_unknown_things_are_404(
    client: TestClient, path: str, params: dict[str, str], names: list[str]
) -> None:
    assert_error(client.get(path, params=params), 404, "not_found", *names)


def test_a_configured_queue_without_events_is_not_404(client: TestClient) -> None:
    assert client.get("/v1/queues/support/kpis", params={"at": AT}).status_code == 200


KPI_PATHS = ["/v1/queues/sales/kpis", "/v1/kpis", "/v1/agents/a1/kpis"]


@pytest.mark.parametrize("path", KPI_PATHS)
@pytest.mark.parametrize(
    "window",
    [
        "2h",  # not one of the five
        "15",  # no unit
        "15M",  # case matters
        "",  # empty
        "Today",
    ],
)
def test_bad_window_is_422_naming_window(client: TestClient, path: str, window: str) -> None:
    response = client.get(path, params={"window": window, "at": AT})
    body = assert_error(response, 422, "invalid_request", "window")
    assert any(p["where"] == "query.window" for p in body["problems"])


@pytest.mark.parametrize("path", [*KPI_PATHS, "/v1/agents"])
@pytest.mark.parametrize(
    "at",
    [
        "yesterday",
        "2024-03-01T10:10:00",  # no offset
        "2024-03-01",  # a date
        "1709287800",  # epoch seconds: events may use them, `at` is RFC 3339
        "2024-02-30T10:00:00Z",  # no such day
        "2024-03-01T25:00:00Z",
        "",
    ],
)
def test_bad_at_is_422_naming_at(client: TestClient, path: str, at: str) -> None:
    assert_error(client.get(path, params={"at": at}), 422, "invalid_request", "at")


YEAR_1 = "0001-01-01T00:05:00Z"  # a 15-minute window back from it starts before year 1
YEAR_10000 = "9999-12-31T23:59:59-01:00"  # year 10000 in UTC
YEAR_999 = "0999-06-01T12:00:00Z"  # a three-digit year: still four digits in RFC 3339


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/queues/sales/kpis", {"at": YEAR_1}),
        ("/v1/queues/sales/kpis", {"at": YEAR_10000}),
        ("/v1/queues/sales/kpis", {"at": YEAR_999}),
        ("/v1/kpis", {"at": YEAR_1}),
        ("/v1/kpis", {"at": YEAR_10000}),
        ("/v1/kpis", {"at": YEAR_999}),
        ("/v1/agents/a1/kpis", {"at": YEAR_1}),
        ("/v1/agents", {"at": YEAR_1}),
        ("/v1/agents", {"at": YEAR_10000}),
        (INTERVALS, {"start": "0001-01-01T00:00:00Z", "end": "0001-01-01T00:30:00Z"}),
    ],
)
def test_at_outside_the_calendar_is_refused_never_a_500(
    client: TestClient, path: str, params: dict[str, str]
) -> None:
    response = client.get(path, params=params)
    if response.status_code != 200:
        body = assert_error(response, 422, "invalid_request")
        assert any(name in body["message"] for name in params), body["message"]
        return
    for name, value in instants(response.json()):  # an answer, if any, is a valid one
        assert RFC3339.fullmatch(value), f"{name}: {value!r} is not RFC 3339"


def instants(node: Any, name: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("start", "end", "since"):
                yield key, value
            else:
                yield from instants(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from instants(item, name)


@pytest.mark.parametrize("path", ["/v1/queues/sales/kpis", "/v1/kpis"])
@pytest.mark.parametrize(
    "threshold_s",
    [
        "-1",  # below 0
        "3601",  # above an hour
        "2.5",  # whole seconds only
        "twenty",
    ],
)
def test_threshold_out_of_range_is_422(client: TestClient, path: str, threshold_s: str) -> None:
    response = client.get(path, params={"threshold_s": threshold_s, "at": AT})
    assert_error(response, 422, "invalid_request", "threshold_s")


@pytest.mark.parametrize("threshold_s", ["0", "3600"])  # the bounds themselves are fine
def test_threshold_bounds_are_allowed(client: TestClient, threshold_s: str) -> None:
    response = client.get("/v1/queues/sales/kpis", params={"threshold_s": threshold_s, "at": AT})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("params", "names"),
    [
        # start == end: an empty range
        ({"start": "2024-03-01T10:00:00Z", "end": "2024-03-01T10:00:00Z"}, ["start", "end"]),
        # start after end
        ({"start": "2024-03-01T11:00:00Z", "end": "2024-03-01T10:00:00Z"}, ["start", "end"]),
        # the same instant written in two zones
        ({"start": "2024-03-01T11:00:00+01:00", "end": "2024-03-01T10:00:00Z"}, ["start"]),
        # more than 8 days
        ({"start": "2024-02-01T00:00:00Z", "end": "2024-03-01T00:00:00Z"}, ["8 days"]),
        ({"size": "1h", "start": "2024-03-01T10:00:00Z"}, ["size"]),  # 15m or 30m only
        ({"size": "5m"}, ["size"]),
        ({"start": "ten o'clock"}, ["start"]),
        ({"end": "2024-03-01T10:00:00"}, ["end"]),  # no offset
    ],
)
def test_bad_intervals_are_422(
    client: TestClient, params: dict[str, str], names: list[str]
) -> None:
    assert_error(client.get(INTERVALS, params=params), 422, "invalid_request", *names)


def test_eight_days_of_intervals_are_allowed(client: TestClient) -> None:
    params = {"start": "2024-02-22T00:00:00Z", "end": "2024-03-01T00:00:00Z", "size": "30m"}
    response = client.get(INTERVALS, params=params)
    assert response.status_code == 200
    assert len(response.json()) == 8 * 48


# -- ingest -------------------------------------------------------------------------------------


def offered(n: int) -> dict[str, Any]:
    return {"event_id": f"e{n}", "type": "call.offered", "ts": iso(T0_US), "queue": "sales",
            "call_id": f"c{n}"}  # fmt: skip


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (orjson.dumps([offered(1), offered(2)]), "application/json"),
        (b"\n".join(orjson.dumps(offered(n)) for n in range(3)), "application/x-ndjson"),
        (orjson.dumps([offered(1), {"type": "call.offered"}]), "application/json"),  # one bad
        (b"[", "application/json"),  # not JSON at all
    ],
)
def test_ingest_without_a_publisher_is_503(
    client: TestClient, body: bytes, content_type: str
) -> None:
    response = client.post("/v1/events", content=body, headers={"content-type": content_type})
    assert_error(response, 503, "unavailable", "Kafka")


def padded_batch(size: int) -> bytes:
    """A JSON array of exactly ``size`` bytes (whitespace padding before the closing bracket)."""
    body = orjson.dumps([offered(1)])
    assert len(body) <= size
    return body[:-1] + b" " * (size - len(body)) + b"]"


@pytest.mark.parametrize(
    ("size", "status"),
    [
        (BODY_LIMIT, 503),  # exactly the limit: read, then refused for want of Kafka
        (BODY_LIMIT + 1, 413),  # one byte over
        (10 * BODY_LIMIT, 413),
    ],
)
def test_body_over_the_limit_is_413(client: TestClient, size: int, status: int) -> None:
    body = padded_batch(size)
    response = client.post("/v1/events", content=body,
                           headers={"content-type": "application/json"})  # fmt: skip
    if status == 413:
        assert_error(response, 413, "payload_too_large", str(BODY_LIMIT))
    else:
        assert_error(response, status, "unavailable")


def test_body_over_the_limit_without_a_length_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # streamed: no content-length to refuse it by
        body = padded_batch(3 * BODY_LIMIT)
        for start in range(0, len(body), 512):
            yield body[start : start + 512]

    response = client.post("/v1/events", content=chunks(),
                           headers={"content-type": "application/json"})  # fmt: skip
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/v1/kpis"), ("POST", "/v1/queues/sales/kpis"), ("GET", "/v1/events")],
)
def test_wrong_method_is_405_json(client: TestClient, method: str, path: str) -> None:
    assert_error(client.request(method, path), 405, "method_not_allowed")
