"""What the API really answers, validated against ``schemas/kpi.schema.json`` made strict.

The published schema allows additional properties (the object is extended, never renamed).
Here every object of it is closed (``additionalProperties: false``), so a field the API starts
returning without a line in the schema fails, as does a documented field that goes missing
(``required``) or changes type. The answers come from the real app over a real read model
(``tests/unit/apifixtures.py``): the hand-made scenario plus catalogue events (tickets, reads,
esat and SERVQUAL surveys, customers) so that maps and nested objects hold values, and a
target on every figure that takes one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from stream.kpi.config import CentreConfig
from stream.kpi.targets import TARGET_DIRECTIONS
from tests.unit.apifixtures import CENTRE, T0_US, TestClient, build_services, client_for, iso, s
from tests.unit.apifixtures import scenario_events as scenario

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "kpi.schema.json"
PUBLISHED: dict[str, Any] = json.loads(SCHEMA_FILE.read_text("utf-8"))
AT = "2024-03-01T10:10:00Z"
# A target on every figure that takes one (values are arbitrary: the status is what varies).
TARGETS = {name: 0.5 for name in TARGET_DIRECTIONS if name != "service_level"}
WINDOWS = ["5m", "15m", "30m", "1h", "today"]


def strict(node: Any) -> Any:
    """The schema with every object that lists its properties closed to any other."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    closed = {key: strict(value) for key, value in node.items()}
    if "properties" in closed and closed.get("additionalProperties", True) is True:
        closed["additionalProperties"] = False
    return closed


STRICT = strict(PUBLISHED)
REGISTRY = Registry().with_resource(PUBLISHED["$id"], Resource.from_contents(STRICT))


def validator(definition: str | None = None) -> Draft202012Validator:
    """The strict KPI object, or one of its ``$defs`` (``centre_kpis``, ``agent_kpis``...)."""
    ref = PUBLISHED["$id"] + (f"#/$defs/{definition}" if definition else "")
    return Draft202012Validator(
        {"$ref": ref}, registry=REGISTRY, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def problems(answer: Any, definition: str | None = None) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator(definition).iter_errors(answer)
    ]


def catalogue_events() -> list[dict[str, Any]]:
    """Events of the catalogue's other types around the scenario's 10:00, queue ``sales``."""
    at = lambda offset_s: iso(T0_US + s(offset_s))  # noqa: E731
    base = {"queue": "sales"}
    return [
        {**base, "event_id": "k1", "type": "ticket.opened", "ts": at(10), "ticket_id": "t1",
         "channel": "email"},
        {**base, "event_id": "k2", "type": "ticket.first_response", "ts": at(70),
         "ticket_id": "t1", "channel": "email"},
        {**base, "event_id": "k3", "type": "ticket.resolved", "ts": at(400), "ticket_id": "t1",
         "channel": "email", "contacts": 2},
        {**base, "event_id": "k4", "type": "kb.article_viewed", "ts": at(20),
         "article_id": "kb-1", "read_s": 30},
        {**base, "event_id": "k5", "type": "survey.response", "ts": at(360), "survey": "esat",
         "agent_id": "a1", "score": 4},
        {**base, "event_id": "k6", "type": "survey.response", "ts": at(361),
         "survey": "servqual", "dimension": "empathy", "expectation": 6, "perception": 5},
        {"event_id": "k7", "type": "customer.acquired", "ts": at(30), "customer_id": "cu1"},
        {"event_id": "k8", "type": "customer.churned", "ts": at(40), "customer_id": "cu2"},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def client() -> TestClient:
    sales = replace(CENTRE.queues["sales"], targets=TARGETS)
    centre = CentreConfig(queues={**CENTRE.queues, "sales": sales}, customer_base=100)
    events = scenario() + catalogue_events()
    return client_for(build_services(events, now_us=T0_US + s(3600), centre=centre))


def get(client: TestClient, path: str, **params: str) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def kpi_objects(answer: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield answer
    for compared in answer.get("compare", {}).values():
        yield from kpi_objects(compared)


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("compare", [None, "previous", "previous,last_week"])
def test_queue_kpis_match_the_strict_schema(
    client: TestClient, window: str, compare: str | None
) -> None:
    params = {"window": window, "at": AT, **({"compare": compare} if compare else {})}
    answer = get(client, "/v1/queues/sales/kpis", **params)
    assert problems(answer) == []
    assert set(answer.get("compare", {})) == set((compare or "").split(",")) - {""}


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("compare", [None, "previous,last_week"])
def test_centre_kpis_match_the_strict_schema(
    client: TestClient, window: str, compare: str | None
) -> None:
    params = {"window": window, "at": AT, **({"compare": compare} if compare else {})}
    answer = get(client, "/v1/kpis", **params)
    assert problems(answer, "centre_kpis") == []
    assert answer["total"]["queue"] is None


def test_intervals_match_the_strict_schema(client: TestClient) -> None:
    answer = get(client, "/v1/queues/sales/intervals", start="2024-03-01T09:00:00Z", end=AT)
    assert len(answer) == 5  # 09:00 .. 10:00, 15 minutes each
    for interval in answer:
        assert problems(interval) == []


@pytest.mark.parametrize("agent_id", ["a1", "a2", "a5"])  # a5 answered but never sent a state
def test_agent_kpis_match_the_strict_schema(client: TestClient, agent_id: str) -> None:
    for window in WINDOWS:
        assert problems(get(client, f"/v1/agents/{agent_id}/kpis", window=window, at=AT),
                        "agent_kpis") == []  # fmt: skip


def test_agent_listing_matches_the_strict_schema(client: TestClient) -> None:
    agents = get(client, "/v1/agents", at=AT)["agents"]
    assert agents
    for agent in agents:
        assert problems(agent, "agent_state") == []


def test_the_answers_exercise_every_nested_shape(client: TestClient) -> None:
    # If the maps and blocks were empty, their item schemas would never be checked.
    answer = get(client, "/v1/queues/sales/kpis", window="today", at=AT, compare="previous")
    assert set(answer["targets"]) == set(TARGET_DIRECTIONS)
    assert answer["first_response_by_channel"] == {"email": 60.0}
    assert answer["servqual"]["empathy"] == -1.0
    assert answer["esat"] == 4.0
    assert answer["retention_rate"] is not None
    statuses = {t["status"] for kpis in kpi_objects(answer) for t in kpis["targets"].values()}
    assert statuses == {"met", "at_risk", "missed", None}  # yesterday had no calls: None


@pytest.mark.parametrize(
    ("change", "definition"),
    [
        (lambda kpis: kpis.update(undocumented=1), None),  # a new field without a schema line
        (lambda kpis: kpis.pop("occupancy"), None),  # a documented field gone
        (lambda kpis: kpis.update(occupancy="85%"), None),  # a type changed
        (lambda kpis: kpis["targets"]["csat"].update(colour="red"), None),  # nested, too
        (lambda kpis: kpis["compare"]["previous"].update(undocumented=1), None),
        (lambda kpis: kpis["servqual"].update(courtesy=None), None),
        (lambda kpis: kpis["targets"].update(made_up={**kpis["targets"]["csat"]}), None),
    ],
)
def test_the_strict_schema_catches_drift(
    client: TestClient, change: Any, definition: str | None
) -> None:
    answer = get(client, "/v1/queues/sales/kpis", window="15m", at=AT, compare="previous")
    assert problems(answer, definition) == []
    change(answer)
    assert problems(answer, definition) != []


def test_the_published_schema_stays_open() -> None:
    # Clients validate with the published file: a field added tomorrow must not break them.
    assert PUBLISHED.get("additionalProperties", True) is True
