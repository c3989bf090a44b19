"""The generic webhook: dotted paths, a type mapping and time formats, from a YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callpulse.adapters.config import AdapterConfigError, adapters_config, load_adapters_config
from callpulse.adapters.core import Skipped, Unmappable
from callpulse.adapters.generic import MISSING, items_of, map_item, resolve

CONFIG = load_adapters_config(Path(__file__).parents[1] / "data" / "generic" / "adapters.yaml")
DIALLER = CONFIG.generic["acme-dialler"]
CRM = CONFIG.generic["crm-tickets"]


def item(evt: str, **extra: Any) -> dict[str, Any]:
    return {
        "evt": evt,
        "uuid": f"u-{evt}",
        "at": 1709283700250,
        "campaign": {"name": "renewals"},
        "call": {"id": 4471, "from": "+33612345678", "queued_ms": "12500", "talk_seconds": "95"},
        "agent": {"login": "jdupont"},
    } | extra


@pytest.mark.parametrize(
    ("document", "path", "expected"),
    [
        ({"a": {"b": [{"c": 1}]}}, "a.b[0].c", 1),  # brackets for indices
        ({"a": {"b": [{"c": 1}]}}, "$.a.b.0.c", 1),  # JSONPath-like root, dotted index
        ({"a": {"b": []}}, "a.b[0]", MISSING),  # index past the end
        ({"a": "text"}, "a.b", MISSING),  # through a scalar
        ({"a": None}, "a", None),  # present but null (the mapping leaves it out)
    ],
)
def test_paths(document: object, path: str, expected: object) -> None:
    assert resolve(document, path) is expected or resolve(document, path) == expected


TYPES = [
    # source event -> contract event, with the fields it maps
    ("queued", {"type": "call.offered", "caller": "+33612345678", "channel": "voice"}),
    ("bridged", {"type": "call.answered", "agent_id": "jdupont", "wait_s": 12.5}),
    ("caller_hangup", {"type": "call.abandoned", "wait_s": 12.5}),
    ("finished", {"type": "call.ended", "talk_s": 95}),  # numeric text becomes a number
]


@pytest.mark.parametrize(("evt", "expected"), TYPES)
def test_dialler_items(evt: str, expected: dict[str, Any]) -> None:
    [event] = map_item(DIALLER, item(evt))  # type: ignore[misc]
    assert {k: event[k] for k in expected} == expected
    assert (event["queue"], event["call_id"], event["ts"]) == ("renewals", "4471", 1709283700.25)


def test_ids_come_from_the_source_id_or_the_content() -> None:
    [first] = map_item(DIALLER, item("queued"))  # type: ignore[misc]
    [same] = map_item(DIALLER, item("queued"))  # type: ignore[misc]
    [other] = map_item(DIALLER, item("queued", uuid="u-other"))  # type: ignore[misc]
    assert first["event_id"] == same["event_id"] != other["event_id"]
    # Without a source id the content is the identity, whatever the key order.
    [a] = map_item(
        CRM,
        {
            "kind": "call.resolved",
            "when": "2024-03-01 10:00:00",
            "team": "t",
            "ref": "r",
            "outcome": {"resolved": True},
        },
    )  # type: ignore[misc]
    [b] = map_item(
        CRM,
        {
            "outcome": {"resolved": True},
            "ref": "r",
            "team": "t",
            "when": "2024-03-01 10:00:00",
            "kind": "call.resolved",
        },
    )  # type: ignore[misc]
    assert a["event_id"] == b["event_id"]


def test_local_times_in_a_named_zone() -> None:
    payload = {
        "kind": "call.resolved",
        "when": "2024-03-01 10:00:00",
        "team": "billing",
        "ref": "T-1",
        "outcome": {"resolved": True, "first_time": False},
    }
    [event] = map_item(CRM, payload)  # type: ignore[misc]
    assert event["ts"] == "2024-03-01T10:00:00+01:00"  # Paris in winter
    assert (event["resolved"], event["first_contact"]) == (True, False)


def test_skipped_and_batched_items() -> None:
    assert map_item(DIALLER, item("heartbeat")) == Skipped("heartbeat")
    assert len(items_of(DIALLER, {"batch": [item("queued"), item("finished")]})) == 2
    with pytest.raises(Unmappable, match="not an array"):
        items_of(DIALLER, {"batch": {"evt": "queued"}})


REFUSED = [
    (item("transferred"), "not mapped"),  # a source type nobody mapped
    ({k: v for k, v in item("queued").items() if k != "evt"}, "type path"),  # no type at all
    (item("queued", at=None), "time path 'at'"),  # no time
    (item("queued", at="noon"), "'at'"),  # a time that is not epoch ms
    (item("bridged", agent={}), "'agent_id' is required; path 'agent.login'"),
    (item("finished", call={"id": 1, "talk_seconds": "long"}), "talk_seconds"),
]


@pytest.mark.parametrize(("payload", "problem"), REFUSED)
def test_refusals_name_the_field_and_its_path(payload: dict[str, Any], problem: str) -> None:
    with pytest.raises(Unmappable, match=problem):
        map_item(DIALLER, payload)


def test_every_problem_of_an_item_is_listed() -> None:
    with pytest.raises(Unmappable) as caught:
        map_item(DIALLER, item("bridged", at="noon", agent={}, campaign={}))
    assert len(caught.value.problems) == 3  # the time, the agent and the queue


BAD_CONFIGS = [
    ({"teams": {}}, "unknown section"),  # a typo'd section
    ({"generic": {"x": {"type": {"path": "e", "values": {"a": "call.queued"}}}}}, "not contract"),
    ({"generic": {"x": {"type": {}}}}, "needs a 'path'"),
    ({"generic": {"x": {"type": "e", "ts": {"format": "yyyy-mm-dd"}}}}, "strptime"),
    ({"generic": {"x": {"type": "e", "ts": {"path": "t", "tz": "Mars/Olympus"}}}}, "time zone"),
    ({"generic": {"x": {"type": "e", "fields": {"queue": 3}}}}, "fields.queue"),
    ({"generic": {"x": {"type": "e", "colour": "red"}}}, "unknown key"),
    ({"twilio": {"activity_states": {"Gym": "sweating"}}}, "not an agent state"),
    ({"twilio": {"agent_field": "WorkerEmail"}}, "agent_field"),
    ({"asterisk": {"agent_aliases": ["SIP/1"]}}, "agent_aliases"),
]


@pytest.mark.parametrize(("data", "problem"), BAD_CONFIGS)
def test_a_bad_configuration_names_the_key(data: dict[str, Any], problem: str) -> None:
    with pytest.raises((AdapterConfigError, ValueError), match=problem):
        adapters_config(data)


def test_the_file_loads_every_section() -> None:
    assert CONFIG.agent_aliases == {"PJSIP/2001": "Alice Martin"}
    assert CONFIG.twilio.activity_states["training"] == "paused"
    assert CONFIG.twilio.worker_queues_attribute == "routing.skills"
    assert sorted(CONFIG.generic) == ["acme-dialler", "crm-tickets"]
