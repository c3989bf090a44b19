"""``/metrics`` (parsed as Prometheus parses it), health, readiness and the OpenAPI document.

The scrape reads the real clock, so the scenario here is the ``apifixtures`` one moved to end
ten minutes ago (``T0`` = ten minutes before this minute), plus one ``billing`` call (default
threshold, 20 s) answered after 20.5 s and one redelivered event. Every gauge of a window is
compared with what the REST API answers for the live window at the same moment.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from api.feed import ChangelogFeed, LagMonitor
from api.readmodel import ReadModel
from callpulse.settings import Settings
from stream.kpi.config import CentreConfig, QueueConfig
from stream.kpi.timeutil import US_PER_S, bucket_start_us
from stream.kpi.windows import WINDOWS
from tests.unit.apifixtures import (
    SALES_THRESHOLD_S,
    TestClient,
    build_services,
    client_for,
    iso,
    s,
    scenario_client,
    scenario_events,
)

QUEUES = ("billing", "sales", "support")  # support: configured, no events
LAG = {("call-events", 0): 7, ("call-events", 1): 0, ("callpulse-routed-events", 3): 12}


def now_us() -> int:
    return time.time_ns() // 1000


T0_US = bucket_start_us(now_us()) - s(600)
# The API's clock, frozen 20 s into the minute after T0 + 10 min: window figures must not
# depend on when (after collection) the module happens to run.
FROZEN_US = T0_US + s(620)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("api.clock.now_us", lambda: FROZEN_US)


def metrics_events() -> list[dict[str, Any]]:
    events = scenario_events(T0_US)
    redelivered = dict(events[6])  # c1 offered, delivered twice: counts once
    billing = [
        {"event_id": "b1", "type": "call.offered", "ts": iso(T0_US + s(100)),
         "queue": "billing", "call_id": "c9"},
        {"event_id": "b2", "type": "call.answered", "ts": iso(T0_US + s(120.5)),
         "queue": "billing", "call_id": "c9", "agent_id": "a9"},
    ]  # fmt: skip
    return [*events, *billing, redelivered]


@pytest.fixture(scope="module")
def client() -> TestClient:
    services = build_services(metrics_events(), now_us=now_us())
    services.lag = LagMonitor(services.settings)
    services.lag.lag = dict(LAG)
    for reason in ("missing_field", "missing_field", "invalid_json"):
        services.model.count_invalid(reason)
    return client_for(services)


def scrape(client: TestClient) -> dict[str, Metric]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def samples(family: Metric, sample_name: str | None = None) -> dict[tuple[str, ...], float]:
    """``{label values in label-name order: value}`` of one sample name of a family."""
    wanted = sample_name or family.name
    return {
        tuple(value for _, value in sorted(sample.labels.items())): sample.value
        for sample in family.samples
        if sample.name == wanted
    }


def rest(client: TestClient, queue: str, window: str) -> dict[str, Any]:
    response = client.get(f"/v1/queues/{queue}/kpis", params={"window": window})
    assert response.status_code == 200
    kpis: dict[str, Any] = response.json()
    return kpis


# -- names and types ----------------------------------------------------------------------------

CORE_METRICS = [
    # (family name as parsed, type, label names, a sample name of it)
    ("callpulse_calls_offered", "counter", {"queue"}, "callpulse_calls_offered_total"),
    ("callpulse_calls_answered", "counter", {"queue"}, "callpulse_calls_answered_total"),
    ("callpulse_calls_abandoned", "counter", {"queue"}, "callpulse_calls_abandoned_total"),
    ("callpulse_wait_seconds", "histogram", {"queue", "outcome"}, "callpulse_wait_seconds_sum"),
    ("callpulse_service_level_ratio", "gauge", {"queue", "window"}, None),
    ("callpulse_abandon_rate_ratio", "gauge", {"queue", "window"}, None),
    ("callpulse_asa_seconds", "gauge", {"queue", "window"}, None),
    ("callpulse_aht_seconds", "gauge", {"queue", "window"}, None),
    ("callpulse_calls_waiting", "gauge", {"queue"}, None),
    ("callpulse_longest_wait_seconds", "gauge", {"queue"}, None),
    ("callpulse_agents", "gauge", {"queue", "state"}, None),
    ("callpulse_events_processed", "counter", {"type"}, "callpulse_events_processed_total"),
    ("callpulse_events_invalid", "counter", {"reason"}, "callpulse_events_invalid_total"),
    ("callpulse_consumer_lag", "gauge", {"topic", "partition"}, None),
]


@pytest.mark.parametrize(("name", "kind", "labels", "sample_name"), CORE_METRICS)
def test_core_metrics_of_the_contract(
    client: TestClient, name: str, kind: str, labels: set[str], sample_name: str | None
) -> None:
    family = scrape(client)[name]
    assert family.type == kind
    assert family.samples, f"{name} has no samples"
    names = {sample.name for sample in family.samples}
    assert (sample_name or name) in names
    for sample in family.samples:
        assert set(sample.labels) - {"le"} == labels, sample


@pytest.mark.parametrize(
    ("name", "values"),
    [
        # all-time totals; the redelivered offer of c1 counts once
        ("callpulse_calls_offered", {("billing",): 1, ("sales",): 6}),
        ("callpulse_calls_answered", {("billing",): 1, ("sales",): 3}),
        ("callpulse_calls_abandoned", {("billing",): 0, ("sales",): 1}),
    ],
)
def test_call_counters(client: TestClient, name: str, values: dict[tuple[str], float]) -> None:
    assert samples(scrape(client)[name], f"{name}_total") == values


# -- the wait histogram -------------------------------------------------------------------------

# waits: sales answered 40 (c0), 10, 25; sales abandoned 3; billing answered 20.5
WAIT_BUCKETS = [
    ("sales", "answered", "10.0", 1),  # 10 <= 10
    ("sales", "answered", "20.0", 1),  # 25 is not <= 20
    ("sales", "answered", "25.0", 2),  # the queue's threshold: 25 <= 25
    ("sales", "answered", "30.0", 2),
    ("sales", "answered", "45.0", 3),
    ("sales", "answered", "+Inf", 3),
    ("sales", "abandoned", "5.0", 1),
    ("sales", "abandoned", "+Inf", 1),
    ("billing", "answered", "20.0", 0),  # 20.5 is over the billing threshold
    ("billing", "answered", "30.0", 1),
]


@pytest.mark.parametrize(("queue", "outcome", "le", "count"), WAIT_BUCKETS)
def test_wait_histogram_buckets(
    client: TestClient, queue: str, outcome: str, le: str, count: int
) -> None:
    buckets = samples(scrape(client)["callpulse_wait_seconds"], "callpulse_wait_seconds_bucket")
    assert buckets[(le, outcome, queue)] == count


def test_wait_histogram_bounds_include_each_queue_threshold(client: TestClient) -> None:
    buckets = samples(scrape(client)["callpulse_wait_seconds"], "callpulse_wait_seconds_bucket")
    bounds = {q: {le for le, _, queue in buckets if queue == q} for q in ("sales", "billing")}
    assert f"{float(SALES_THRESHOLD_S)}" in bounds["sales"]
    assert "20.0" in bounds["billing"]
    assert "25.0" not in bounds["billing"]  # not a default bound: only the sales threshold
    for per_queue in bounds.values():
        assert "+Inf" in per_queue


def test_wait_histogram_sum_and_count(client: TestClient) -> None:
    family = scrape(client)["callpulse_wait_seconds"]
    assert samples(family, "callpulse_wait_seconds_sum")[("answered", "sales")] == 40 + 10 + 25
    assert samples(family, "callpulse_wait_seconds_count")[("answered", "sales")] == 3
    assert samples(family, "callpulse_wait_seconds_sum")[("abandoned", "sales")] == 3


def test_wait_histogram_threshold_bucket_matches_rest(client: TestClient) -> None:
    buckets = samples(scrape(client)["callpulse_wait_seconds"], "callpulse_wait_seconds_bucket")
    # all time holds c0 too (40 s, over the threshold); the last hour holds the other two
    hour = rest(client, "sales", "1h")
    assert hour["answered_in_threshold"] == 2
    assert buckets[("25.0", "answered", "sales")] == hour["answered_in_threshold"]


# -- window gauges ------------------------------------------------------------------------------

WINDOW_GAUGES = {
    "callpulse_service_level_ratio": "service_level",
    "callpulse_abandon_rate_ratio": "abandon_rate",
    "callpulse_asa_seconds": "asa_s",
    "callpulse_aht_seconds": "aht_s",
}


@pytest.mark.parametrize(("name", "field"), WINDOW_GAUGES.items())
def test_window_gauges_match_rest(client: TestClient, name: str, field: str) -> None:
    figures = {(q, w): rest(client, q, w)[field] for q in QUEUES for w in WINDOWS}
    gauge = samples(scrape(client)[name])
    # a window without a value (null) has no sample rather than a 0
    assert gauge == pytest.approx({key: v for key, v in figures.items() if v is not None})


@pytest.mark.parametrize(
    ("name", "window", "expected"),
    [
        ("callpulse_service_level_ratio", "15m", 2 / (2 + 1 - 1)),
        ("callpulse_abandon_rate_ratio", "15m", 1 / (2 + 1 + 1)),
        ("callpulse_asa_seconds", "15m", (10 + 25) / 2),
        ("callpulse_aht_seconds", "15m", (110 + 10 + 200) / 2 + 30),
        ("callpulse_service_level_ratio", "5m", None),  # surveys only in the last 5 minutes
        ("callpulse_asa_seconds", "5m", None),
    ],
)
def test_window_gauges_hand_values(
    client: TestClient, name: str, window: str, expected: float | None
) -> None:
    assert samples(scrape(client)[name]).get(("sales", window)) == expected


# -- live gauges --------------------------------------------------------------------------------


def test_each_queue_exports_its_own_target_and_threshold() -> None:
    centre = CentreConfig(
        queues={"sales": QueueConfig(threshold_s=SALES_THRESHOLD_S, target=0.9)},
        defaults=QueueConfig(threshold_s=15, target=0.75),
    )
    families = scrape(client_for(build_services(metrics_events(), now_us=now_us(), centre=centre)))
    targets = samples(families["callpulse_service_level_target_ratio"])
    thresholds = samples(families["callpulse_service_level_threshold_seconds"])
    assert targets == {("sales",): 0.9, ("billing",): 0.75}
    assert thresholds == {("sales",): float(SALES_THRESHOLD_S), ("billing",): 15.0}


def test_calls_waiting_now(client: TestClient) -> None:
    waiting = samples(scrape(client)["callpulse_calls_waiting"])
    assert waiting == {("billing",): 0, ("sales",): 1, ("support",): 0}
    assert rest(client, "sales", "15m")["calls_waiting"] == 1


def test_longest_wait_is_the_age_of_the_oldest_waiting_call(client: TestClient) -> None:
    offered_us = T0_US + s(180)  # c4
    longest = samples(scrape(client)["callpulse_longest_wait_seconds"])
    # The gauge looks just after now (1 µs) so a call offered exactly now counts as waiting.
    assert abs(longest[("sales",)] - (FROZEN_US - offered_us) / US_PER_S) <= 1e-5
    assert longest[("support",)] == 0.0  # nobody waits: 0 here, null in the REST answer


def test_agent_gauges_match_rest(client: TestClient) -> None:
    agents = samples(scrape(client)["callpulse_agents"])
    sales = {state: n for (queue, state), n in agents.items() if queue == "sales"}
    assert sales == {"available": 1, "on_call": 1, "acw": 0, "paused": 1, "logged_out": 1,
                     "logged_in": 3}  # fmt: skip
    for queue in QUEUES:
        per_queue = {state: n for (q, state), n in agents.items() if q == queue}
        assert per_queue == rest(client, queue, "5m")["agents"], queue


# -- the pipeline -------------------------------------------------------------------------------


def test_events_processed_by_type(client: TestClient) -> None:
    processed = samples(scrape(client)["callpulse_events_processed"],
                        "callpulse_events_processed_total")  # fmt: skip
    # every valid event the workers processed, the redelivered one included
    expected = Counter(event["type"] for event in metrics_events())
    assert processed == {(kind,): n for kind, n in expected.items()}
    assert processed[("call.offered",)] == 6 + 1 + 1  # sales, billing, the redelivery


def test_duplicates_are_counted(client: TestClient) -> None:
    duplicates = samples(scrape(client)["callpulse_events_duplicate"],
                         "callpulse_events_duplicate_total")  # fmt: skip
    assert duplicates == {(): 1}


def test_events_invalid_by_reason(client: TestClient) -> None:
    invalid = samples(scrape(client)["callpulse_events_invalid"],
                      "callpulse_events_invalid_total")  # fmt: skip
    assert invalid == {("invalid_json",): 1, ("missing_field",): 2}


def test_consumer_lag(client: TestClient) -> None:
    lag = samples(scrape(client)["callpulse_consumer_lag"])
    assert lag == {(str(p), topic): n for (topic, p), n in LAG.items()}


def test_metrics_without_a_lag_monitor_or_events() -> None:
    empty = scrape(client_for(build_services([], now_us=now_us())))
    assert samples(empty["callpulse_consumer_lag"]) == {}
    assert samples(empty["callpulse_events_invalid"], "callpulse_events_invalid_total") == {}
    # configured queues still have their live gauges
    assert samples(empty["callpulse_calls_waiting"]) == {("sales",): 0, ("support",): 0}


def test_each_app_has_its_own_registry() -> None:
    first, second = scenario_client(), scenario_client()
    assert scrape(first).keys() == scrape(second).keys()


# -- health, readiness, OpenAPI -----------------------------------------------------------------


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_without_a_feed_is_ready(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


def test_readyz_before_the_feed_has_recovered_is_503() -> None:
    services = build_services([], now_us=now_us())
    services.feed = ChangelogFeed(Settings(), ReadModel())  # never started: not connected
    response = client_for(services).get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "not_ready",
                               "checks": {"broker": False, "view_recovered": False}}  # fmt: skip


# CONTRACT.md's HTTP table (path parameters may be named differently: the URL is the same)
CONTRACT_ROUTES = [
    ("get", "/v1/queues/{}/kpis"),
    ("get", "/v1/kpis"),
    ("get", "/v1/queues/{}/intervals"),
    ("get", "/v1/agents"),
    ("get", "/v1/agents/{}/kpis"),
    ("get", "/v1/stream"),
    ("post", "/v1/events"),
    ("get", "/metrics"),
    ("get", "/healthz"),
    ("get", "/readyz"),
]


def route_shapes(openapi: dict[str, Any]) -> set[tuple[str, str]]:
    shapes = set()
    for path, operations in openapi["paths"].items():
        shape = "/".join("{}" if part.startswith("{") else part for part in path.split("/"))
        shapes |= {(method, shape) for method in operations}
    return shapes


def test_openapi_lists_every_contract_route(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    openapi = response.json()
    assert set(CONTRACT_ROUTES) <= route_shapes(openapi)
    assert openapi["info"]["title"] == "callpulse"


@pytest.mark.parametrize(
    ("path", "parameters"),
    [
        ("/v1/queues/{queue}/kpis", {"queue", "window", "at", "threshold_s"}),
        ("/v1/kpis", {"window", "at", "threshold_s"}),
        ("/v1/queues/{queue}/intervals", {"queue", "size", "start", "end", "threshold_s"}),
    ],
)
def test_openapi_documents_the_query_parameters(
    client: TestClient, path: str, parameters: set[str]
) -> None:
    operation = client.get("/openapi.json").json()["paths"][path]["get"]
    assert {p["name"] for p in operation["parameters"]} >= parameters


def test_docs_answer(client: TestClient) -> None:
    response: httpx.Response = client.get("/docs")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
