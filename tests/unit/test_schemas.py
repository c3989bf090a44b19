"""The JSON Schemas in ``schemas/``: well-formed, complete, current, agreeing with our validator."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from stream.decode import Rejection
from stream.kpi.timeutil import US_PER_S
from stream.validation import MAX_MAGNITUDE, EventValidator

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
EVENTS_DIR = SCHEMAS_DIR / "events"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
# The event types of CONTRACT.md, spelled out here so a schema cannot go missing unnoticed.
CONTRACT_TYPES = {
    "call.offered",
    "call.answered",
    "call.abandoned",
    "call.exited",
    "call.transferred",
    "call.ended",
    "call.wrapup_ended",
    "call.resolved",
    "survey.response",
    "agent.state",
    "ticket.opened",
    "ticket.first_response",
    "ticket.resolved",
    "kb.article_viewed",
    "customer.acquired",
    "customer.churned",
}
VALIDATOR = EventValidator()
# 2024-03-05T12:00:00Z: after every example's ts, and well within the accepted past.
NOW_US = 1_709_640_000 * US_PER_S


def _load_build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("schemas_build", SCHEMAS_DIR / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = _load_build_script()
EXAMPLES: dict[str, dict[str, Any]] = BUILD.EXAMPLES


def _read(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _event_schema(event_type: str) -> dict[str, Any]:
    return _read(EVENTS_DIR / f"{event_type}.schema.json")


@pytest.mark.parametrize(
    "path", sorted(SCHEMAS_DIR.rglob("*.schema.json")), ids=lambda path: path.name
)
def test_schema_is_valid_draft_2020_12(path: Path) -> None:
    schema = _read(path)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == DRAFT_2020_12
    relative = path.relative_to(SCHEMAS_DIR).as_posix()
    assert schema["$id"] == f"https://callpulse.dev/schemas/{relative}"
    assert schema["title"]
    assert schema["description"]


def test_every_contract_type_has_a_schema() -> None:
    files = {path.name.removesuffix(".schema.json") for path in EVENTS_DIR.glob("*.schema.json")}
    assert files == CONTRACT_TYPES | {"common"}
    assert VALIDATOR.event_types == CONTRACT_TYPES
    assert set(EXAMPLES) == CONTRACT_TYPES


def test_generated_schemas_are_up_to_date() -> None:
    # The per-type files are generated: an edit to build.py or common.schema.json needs a rerun.
    assert BUILD.stale_files(BUILD.render_all()) == []


def test_common_schema_matches_every_type() -> None:
    common = _read(EVENTS_DIR / "common.schema.json")
    assert set(common["$defs"]["event_type"]["enum"]) == CONTRACT_TYPES
    for event_type, example in EXAMPLES.items():
        assert Draft202012Validator(common).is_valid(example), event_type
        assert set(common["required"]) <= set(_event_schema(event_type)["required"])


def _change(event_type: str, **fields: Any) -> dict[str, Any]:
    """The type's example with ``fields`` changed; a field set to ... is removed."""
    merged = {**EXAMPLES[event_type], **fields}
    return {key: value for key, value in merged.items() if value is not ...}


AGREEMENT = [
    # the published example of every type
    *[(EXAMPLES[event_type], True) for event_type in sorted(CONTRACT_TYPES)],
    # extra fields are allowed everywhere
    (_change("call.offered", ivr={"path": [1, 2]}, note=None), True),
    # epoch-seconds ts, integer and fractional
    (_change("call.answered", ts=1_709_631_018), True),
    (_change("call.answered", ts=1_709_631_018.5), True),
    # required fields missing
    (_change("call.answered", agent_id=...), False),
    (_change("call.ended", talk_s=...), False),
    (_change("call.offered", event_id=...), False),
    (_change("kb.article_viewed", article_id=...), False),
    # optional fields absent
    (_change("call.abandoned", wait_s=...), True),
    (_change("kb.article_viewed", queue=..., read_s=...), True),
    # bool is not a number, and a string number is not a number
    (_change("call.ended", talk_s=True), False),
    (_change("call.ended", talk_s="312"), False),
    (_change("call.offered", ts=True), False),
    # duration bounds: 0 and a week pass, just outside fails
    (_change("call.answered", wait_s=0), True),
    (_change("call.answered", wait_s=604800), True),
    (_change("call.answered", wait_s=-0.5), False),
    (_change("call.answered", wait_s=604800.1), False),
    # identifier lengths
    (_change("call.offered", queue=""), False),
    (_change("call.offered", queue="q" * 200), True),
    (_change("call.offered", queue="q" * 201), False),
    # enums
    (_change("call.offered", channel="social"), False),
    (_change("ticket.opened", channel="social"), True),
    (_change("call.exited", reason="timeout "), False),
    # a transfer needs a destination, either one will do
    (_change("call.transferred", to_queue=...), False),
    (_change("call.transferred", to_queue=..., to_agent="a-3"), True),
    # score is required unless servqual; servqual needs its three fields
    (_change("survey.response", score=...), False),
    (_change("survey.response", survey="servqual", score=...), False),
    (
        _change(
            "survey.response",
            survey="servqual",
            score=...,
            dimension="assurance",
            expectation=6,
            perception=4,
        ),
        True,
    ),
    (_change("survey.response", scale_max=0), False),
    # integers: 2.0 is one in JSON Schema, 1.5 and true are not, 0 is out of range
    (_change("ticket.resolved", contacts=2.0), True),
    (_change("ticket.resolved", contacts=1.5), False),
    (_change("ticket.resolved", contacts=True), False),
    (_change("ticket.resolved", contacts=0), False),
    # queue lists: items are identifiers, at most 500
    (_change("agent.state", queues=[]), True),
    (_change("agent.state", queues=["q"] * 500), True),
    (_change("agent.state", queues=["q"] * 501), False),
    (_change("agent.state", queues=["q", None]), False),
    # names: no control character anywhere (U+0000 to U+001F, U+007F), other text is fine
    (_change("call.offered", queue="q\x00"), False),
    (_change("call.offered", call_id="c\x1fd"), False),  # the record keys' separator
    (_change("call.offered", event_id="e-1\n"), False),  # a trailing newline, where $ is lax
    (_change("call.offered", caller="\x7f"), False),
    (_change("agent.state", queues=["billing", "\x1b[31mred"]), False),
    (_change("call.offered", queue="Kundendienst é✓ 😀"), True),
    (_change("call.offered", queue="q\x80\u2028"), True),  # C1 and line separators: not ours
    # numbers that are not durations: within ±1e9, bounds included
    (_change("survey.response", score=1_000_000_000), True),
    (_change("survey.response", score=-1_000_000_000), True),
    (_change("survey.response", score=1_000_000_000.0001), False),
    (_change("survey.response", score=-1e308), False),
    (_change("survey.response", scale_max=1e10), False),
    (_change("ticket.resolved", contacts=1_000_000_000), True),
    (_change("ticket.resolved", contacts=1_000_000_001), False),
]


@pytest.mark.parametrize(("candidate", "valid"), AGREEMENT)
def test_jsonschema_and_our_validator_agree(candidate: dict[str, Any], valid: bool) -> None:
    reference = Draft202012Validator(_event_schema(candidate["type"])).is_valid(candidate)
    ours = VALIDATOR.validate(candidate, now_us=NOW_US)
    assert (reference, not isinstance(ours, Rejection)) == (valid, valid), ours


# Every field that holds a name, as CONTRACT.md lists them ("queues" holds a list of names).
NAME_FIELDS = {"event_id", "queue", "call_id", "agent_id", "caller", "to_queue", "to_agent",
               "ticket_id", "article_id", "customer_id", "queues"}  # fmt: skip
FREE_TEXT = {"ts", "reason"}  # a timestamp, and agent.state's pause reason (not a key part)
CONTROL = [chr(code) for code in (*range(0x20), 0x7F)]
NOT_CONTROL = [" ", "~", "\x80", "\xa0", "\u2028", "é", "😀"]


def _string_fields(schema: dict[str, Any]) -> set[str]:
    """Properties that take free strings (no enum, no const) or lists of them."""
    fields = set()
    for name, prop in schema["properties"].items():
        shape = prop.get("items", {}) if prop.get("type") == "array" else prop
        if shape.get("type") == "string" and not {"enum", "const"} & set(shape):
            fields.add(name)
    return fields


def _with_name(event_type: str, field: str, text: str) -> dict[str, Any]:
    return _change(event_type, **{field: [text] if field == "queues" else text})


def test_schemas_and_validator_refuse_the_same_names() -> None:
    """A name with a control character: refused by the published schema and by the validator;
    any other character: accepted by both. Every name field of every type, every character."""
    disagreements = []
    for event_type in sorted(CONTRACT_TYPES):
        schema = _event_schema(event_type)
        assert _string_fields(schema) - FREE_TEXT <= NAME_FIELDS, event_type  # a new name field?
        reference = Draft202012Validator(schema)
        for field in sorted(_string_fields(schema) & NAME_FIELDS):
            # inside, and last (where a regex `$` may match before a final newline)
            for text in (f"{prefix}{char}{suffix}" for char in CONTROL + NOT_CONTROL
                         for prefix, suffix in (("x", "y"), ("x", ""))):  # fmt: skip
                candidate = _with_name(event_type, field, text)
                expected = not any(char in CONTROL for char in text)
                published = reference.is_valid(candidate)
                ours = not isinstance(VALIDATOR.validate(candidate, now_us=NOW_US), Rejection)
                if (published, ours) != (expected, expected):
                    disagreements.append((event_type, field, repr(text), published, ours))
    assert disagreements == []


def _number_fields(schema: dict[str, Any]) -> list[str]:
    types = (
        {"number", "integer"} & set(_as_list(prop.get("type")))
        for prop in schema["properties"].values()
    )
    return [
        name
        for name, kinds in zip(schema["properties"], types, strict=True)
        if kinds and name != "ts"
    ]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_schemas_and_validator_refuse_the_same_numbers() -> None:
    """Beyond ±MAX_MAGNITUDE every number is refused by both; around the bound (and the field's
    own narrower range) the published schema and the validator agree."""
    bound = MAX_MAGNITUDE
    beyond = [math.nextafter(bound, math.inf), -math.nextafter(bound, math.inf), 10 * bound]
    probes = [bound, -bound, bound - 1, -(bound - 1), *beyond]
    disagreements = []
    for event_type in sorted(CONTRACT_TYPES):
        schema = _event_schema(event_type)
        reference = Draft202012Validator(schema)
        for field in _number_fields(schema):
            prop = schema["properties"][field]
            assert -bound <= prop.get("minimum", -math.inf) <= prop["maximum"] <= bound, field
            for value in probes:
                candidate = _change(event_type, **{field: value})
                published = reference.is_valid(candidate)
                ours = not isinstance(VALIDATOR.validate(candidate, now_us=NOW_US), Rejection)
                if published != ours or (value in beyond and ours):
                    disagreements.append((event_type, field, value, published, ours))
    assert disagreements == []


KPI = {
    "queue": "billing",
    "window": "15m",
    "start": "2024-03-05T09:15:00Z",
    "end": "2024-03-05T09:30:00Z",
    "offered": 40,
    "answered": 35,
    "abandoned": 4,
    "short_abandoned": 1,
    "exited": 1,
    "answered_in_threshold": 30,
    "service_level": 30 / 38,
    "service_level_threshold_s": 20,
    "answer_rate": 0.875,
    "abandon_rate": 0.1,
    "asa_s": 12.5,
    "avg_wait_s": 14.0,
    "max_wait_s": 95,
    "avg_abandon_s": 31.25,
    "aht_s": 340.2,
    "avg_talk_s": 280,
    "avg_hold_s": 20.2,
    "avg_acw_s": 40,
    "transferred": 2,
    "transfer_rate": 2 / 35,
    "calls_waiting": 3,
    "longest_wait_s": 41.2,
    "agents": {"available": 4, "on_call": 6, "logged_in": 10},
    "csat": 0.9,
    "nps": 35.5,
    "ces": 2.1,
    "fcr_rate": 0.7,
    "service_level_target": 0.8,
    "sl_formula": "answered_and_abandoned",
    # the catalogue's figures (KPIS.md)
    "esat": 4.2,
    "servqual": {
        "tangibles": 0.5,
        "reliability": -1.0,
        "responsiveness": None,
        "assurance": None,
        "empathy": 0.0,
    },
    "kb_reads": 12,
    "avg_kb_read_s": 48.5,
    "kb_reads_per_call": 0.3,
    "tickets_opened": 5,
    "tickets_resolved": 3,
    "avg_time_to_resolve_s": 5400,
    "avg_first_response_s": 600,
    "first_response_by_channel": {"email": 900, "chat": 30.5},
    "fcr_provisional": True,
    "repeat_rate": 0.1,
    "contacts_per_resolution": 1.4,
    "occupancy": 0.85,
    "retention_rate": 97.5,
    "required_agents": 12,
    "predicted_service_level": 0.82,
    "expected_wait_s": 9.5,
    "targets": {
        "service_level": {"target": 0.8, "direction": "min", "status": "missed"},
        "aht_s": {"target": 360, "direction": "max", "status": "at_risk"},
    },
    "service_level_status": "missed",
}
COUNTS = ("offered", "answered", "abandoned", "short_abandoned", "exited", "transferred")
CATALOGUE_COUNTS = ("kb_reads", "tickets_opened", "tickets_resolved")
EMPTY_WINDOW = {
    **dict.fromkeys(KPI),  # every ratio and average: null
    **dict.fromkeys((*COUNTS, *CATALOGUE_COUNTS, "answered_in_threshold", "calls_waiting"), 0),
    "servqual": dict.fromkeys(KPI["servqual"]),
    "first_response_by_channel": {},
    "fcr_provisional": False,
    "targets": {"service_level": {"target": 0.8, "direction": "min", "status": None}},
    **{key: KPI[key] for key in ("queue", "window", "start", "end", "sl_formula")},
    **{key: KPI[key] for key in ("service_level_threshold_s", "service_level_target")},
    "agents": {},
}


@pytest.mark.parametrize(
    ("kpi", "valid"),
    [
        # a busy window
        (KPI, True),
        # an empty window: counts 0, every ratio and average null
        (EMPTY_WINDOW, True),
        # extended with a field the contract does not name yet
        ({**KPI, "future_figure": 0.85}, True),
        # compared windows are KPI objects too
        ({**KPI, "compare": {"previous": EMPTY_WINDOW, "last_week": KPI}}, True),
        ({**KPI, "compare": {"previous": {**KPI, "offered": -1}}}, False),
        # bounds of ratios and nps are inclusive
        ({**KPI, "service_level": 1, "abandon_rate": 0, "nps": -100}, True),
        # the centre-wide total may carry a null queue
        ({**KPI, "queue": None}, True),
        # an end with an offset and a fraction
        ({**KPI, "end": "2024-03-05T10:30:00.5+01:00"}, True),
        # a ratio above 1, a negative count, a fractional count, a boolean count
        ({**KPI, "answer_rate": 1.01}, False),
        ({**KPI, "offered": -1}, False),
        ({**KPI, "offered": 1.5}, False),
        ({**KPI, "offered": True}, False),
        # nps out of range, a negative duration, an agent count that is not an integer
        ({**KPI, "nps": 100.5}, False),
        ({**KPI, "asa_s": -1}, False),
        ({**KPI, "agents": {"available": "4"}}, False),
        # a zero denominator is null, never a string
        ({**KPI, "csat": "n/a"}, False),
        # start without an offset, an unknown formula, a missing field
        ({**KPI, "start": "2024-03-05T09:15:00"}, False),
        ({**KPI, "sl_formula": "custom"}, False),
        ({key: value for key, value in KPI.items() if key != "calls_waiting"}, False),
        # catalogue figures: a ratio above 1, a status or a target field nobody defined
        ({**KPI, "occupancy": 1.2}, False),
        ({**KPI, "service_level_status": "green"}, False),
        ({**KPI, "targets": {"made_up": {"target": 1, "direction": "min", "status": None}}}, False),
        ({**KPI, "servqual": {**KPI["servqual"], "empathy": "low"}}, False),
    ],
)
def test_kpi_schema(kpi: dict[str, Any], valid: bool) -> None:
    assert Draft202012Validator(_read(SCHEMAS_DIR / "kpi.schema.json")).is_valid(kpi) == valid


def test_a_schema_may_ref_the_common_one(tmp_path: Path) -> None:
    # Hand-written schemas can $ref common.schema.json by its $id: resolved from disk, offline.
    (tmp_path / "common.schema.json").write_text((EVENTS_DIR / "common.schema.json").read_text())
    schema = {
        "$schema": DRAFT_2020_12,
        "$id": "https://callpulse.dev/schemas/events/call.offered.schema.json",
        "allOf": [{"$ref": "common.schema.json"}],
        "required": ["queue", "call_id"],
    }
    (tmp_path / "call.offered.schema.json").write_text(json.dumps(schema))
    validator = EventValidator(tmp_path)
    example = EXAMPLES["call.offered"]
    assert not isinstance(validator.validate(example, now_us=NOW_US), Rejection)
    missing = validator.validate({**example, "event_id": ""}, now_us=NOW_US)
    assert isinstance(missing, Rejection)
    assert missing.reason == "invalid_value"


def test_an_empty_schema_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no event schemas"):
        EventValidator(tmp_path)
