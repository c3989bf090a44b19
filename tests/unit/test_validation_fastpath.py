"""The fast path (``stream.fastcheck``) in front of fastjsonschema changes no verdict.

The schema is the reference: ``EventValidator(fast_path=False)`` sends every candidate
through fastjsonschema and the checks after it, as before the fast path. For candidates built
valid from each event type's schema and then mutated (fields dropped, wrong types, booleans for
numbers, values out of range, long, empty and control-character strings, extra fields, nested
junk, NaN and infinities), both give the same event or the same rejection, reason and words;
and whatever the fast check accepts, fastjsonschema accepts too.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stream.decode import Rejection
from stream.fastcheck import IDENTIFIER_PATTERN, accept_check
from stream.kpi.timeutil import US_PER_S, us_to_rfc3339
from stream.validation import (
    INVALID_TIMESTAMP,
    MAX_NESTING,
    TOO_FAR_IN_FUTURE,
    TOO_OLD,
    EventValidator,
)
from tests.unit.test_validation import NOW_US, _nest, event
from tests.unit.test_validation_patterns import PLAIN, SCHEMAS

FAST = EventValidator()
REFERENCE = EventValidator(fast_path=False)
TIMING = {INVALID_TIMESTAMP, TOO_OLD, TOO_FAR_IN_FUTURE}


def fast_accepts(candidate: dict[Any, Any]) -> bool:
    """What the fast check alone says of a candidate of a known type."""
    return FAST._rules[candidate["type"]][4](candidate)


class Name(str):
    """A str subclass: valid to fastjsonschema, left to it by the fast check."""


# Control characters and other non-printable text next to ordinary text.
TEXT = st.text(
    alphabet=st.sampled_from(["\x00", "\t", "\x1f", " ", "\x7f", "\x80", "\xa0", "\u2028"])
    | st.characters(),
    max_size=8,
)
EDGE_STRINGS = st.sampled_from(["", "x" * 64, "x" * 65, "x" * 200, "x" * 201, "servqual"])
EDGE_NUMBERS = st.sampled_from(
    [0, -0.0, -1, 0.5, 3.0, 604800, 604800.5, 1e9, 1e9 + 1, -1e9, -1e9 - 1, 2**64, 1e300]
)
NOT_NUMBERS = st.sampled_from([math.nan, math.inf, -math.inf, True, False])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and both infinities included
    | EDGE_NUMBERS
    | NOT_NUMBERS
    | TEXT
    | EDGE_STRINGS
    | st.sampled_from([Decimal("1.5"), Name("q"), (1, 2), b"q"])
)
JUNK = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
) | st.sampled_from([_nest(MAX_NESTING), _nest(MAX_NESTING + 1)])
EXTRA_NAMES = ["meta", "source", "ts_us", "x"]


def valid_value(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A value ``schema`` (one property of the event schemas) accepts."""
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if "string" in types and "number" in types:  # ts: RFC 3339 or epoch seconds, near now
        moments = st.integers(NOW_US - 3600 * US_PER_S, NOW_US + 60 * US_PER_S)
        return moments.map(us_to_rfc3339) | moments.map(lambda us: us / US_PER_S)
    kind = types[0]
    if kind == "string":
        size = min(schema.get("maxLength", 20), 20)
        short = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=size)
        return short.filter(lambda text: len(text) >= schema.get("minLength", 0))
    if kind in ("number", "integer"):
        low, high = schema.get("minimum", -1e9), schema.get("maximum", 1e9)
        low = max(low, schema.get("exclusiveMinimum", low - 1) + 1)
        ints = st.integers(math.ceil(low), math.floor(high))
        return ints if kind == "integer" else ints | st.floats(low, high)
    if kind == "boolean":
        return st.booleans()
    if kind == "object":
        return st.dictionaries(TEXT, SCALARS, max_size=2)
    assert kind == "array", schema  # a new kind of field: teach this test to build it
    return st.lists(valid_value(schema["items"]), max_size=min(schema.get("maxItems", 3), 3))


@st.composite
def candidates(draw: st.DrawFn, schemas: dict[str, dict[str, Any]]) -> dict[Any, Any]:
    """An event valid for one of ``schemas``, then mutated 0 to 3 times."""
    event_type = draw(st.sampled_from(sorted(schemas)))
    schema = schemas[event_type]
    properties: dict[str, Any] = schema["properties"]
    required = set(schema["required"])
    fields: dict[Any, Any] = {
        name: draw(valid_value(prop))
        for name, prop in properties.items()
        if name in required or draw(st.booleans())
    }
    names = sorted(properties) + EXTRA_NAMES
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(names))
        how = draw(st.sampled_from(["drop", "junk", "edge", "valid elsewhere"]))
        if how == "drop":
            fields.pop(name, None)
        elif how == "junk":
            fields[name] = draw(JUNK)
        elif how == "edge":
            fields[name] = draw(EDGE_NUMBERS | NOT_NUMBERS | EDGE_STRINGS | TEXT)
        else:  # a value valid for some field, here or in another type
            other = draw(st.sampled_from(sorted(SCHEMAS)))
            _, prop = draw(st.sampled_from(sorted(SCHEMAS[other]["properties"].items())))
            fields[name] = draw(valid_value(prop))
    return fields


@settings(max_examples=3000)
@given(candidates(SCHEMAS))
def test_the_fast_path_changes_no_verdict_and_no_words(candidate: dict[Any, Any]) -> None:
    result = FAST.validate(candidate, now_us=NOW_US)
    assert result == REFERENCE.validate(candidate, now_us=NOW_US)


@settings(max_examples=3000)
@given(candidates(SCHEMAS))
def test_the_fast_check_accepts_only_what_the_schema_accepts(candidate: dict[Any, Any]) -> None:
    event_type = candidate.get("type")
    if not isinstance(event_type, str) or event_type not in PLAIN or not fast_accepts(candidate):
        return
    PLAIN[event_type](candidate)  # raises if the schema rejects it
    result = REFERENCE.validate(candidate, now_us=NOW_US)
    # Past the schema only the checks after it reject: they must not either.
    assert not isinstance(result, Rejection) or result.reason in TIMING


@pytest.mark.parametrize(
    "candidate",
    [
        # every schema's examples, and the minimal event of every type
        *[example for schema in SCHEMAS.values() for example in schema["examples"]],
        *[event(event_type) for event_type in sorted(SCHEMAS)],
        # optional fields at their bounds, a servqual survey, a transfer to an agent
        event("call.ended", talk_s=604800, hold_s=0.5, queue="q" * 200),
        event("agent.state", queues=["q"] * 500, reason="lunch"),
        event(
            "survey.response",
            survey="servqual",
            score=...,
            dimension="empathy",
            expectation=6,
            perception=5.5,
        ),
        event("call.transferred", to_queue=..., to_agent="a-2"),
        # an extra scalar field, and non-ASCII printable names
        event("call.offered", source="pbx-1", queue="Kundendienst für Ärzte"),
    ],
)
def test_ordinary_events_take_the_fast_path(candidate: dict[str, Any]) -> None:
    assert fast_accepts(candidate)


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        # left to fastjsonschema: an integer written 2.0 (valid), a str subclass (valid)
        (event("ticket.resolved", contacts=2.0), None),
        (event("call.offered", queue=Name("billing")), None),
        # a tab in a name, a bool for a number, NaN, a nested extra (each rejected)
        (event("call.offered", queue="bil\tling"), "invalid_value"),
        (event("call.answered", wait_s=True), "wrong_type"),
        (event("call.abandoned", wait_s=math.nan), "invalid_value"),
        (event("call.offered", meta=_nest(MAX_NESTING + 1)), "invalid_value"),
        # a valid nested extra still goes the slow way: it must be walked
        (event("call.offered", meta={"a": [1]}), None),
    ],
)
def test_unusual_events_are_left_to_the_schema(candidate: dict[str, Any], reason: str) -> None:
    assert not fast_accepts(candidate)
    result = FAST.validate(candidate, now_us=NOW_US)
    assert result == REFERENCE.validate(candidate, now_us=NOW_US)
    assert (result.reason if isinstance(result, Rejection) else None) == reason


# Keywords and shapes the event schemas do not use today, each against fastjsonschema.
IDENTIFIER = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": IDENTIFIER_PATTERN}
SYNTHETIC = [
    {"type": "integer", "minimum": 1, "exclusiveMaximum": 10},
    {"type": ["number", "null"], "exclusiveMinimum": 0},
    {"type": "number"},  # unbounded: NaN and infinities are valid
    {"type": ["string", "boolean"], "enum": ["a", True, 1]},
    {"const": 1},
    {"type": "string", "pattern": "^a"},  # a pattern other than the identifier's
    {"type": "array", "minItems": 1, "items": {"type": "array", "items": IDENTIFIER}},
    {"type": "array", "prefixItems": [{"type": "string"}]},  # unknown keyword
    {"$ref": "#/$defs/x", "$defs": {"x": {"type": "string"}}},
    {"then": {"required": ["a"]}},  # then without if
    {
        "type": "object",
        "required": ["a"],
        "properties": {"a": IDENTIFIER, "b": {"type": "object", "properties": {"c": False}}},
        "additionalProperties": False,
    },
    {"type": "object", "properties": {"p": {"type": "string", "pattern": "x"}}},
    {"type": "object", "additionalProperties": {"type": "integer"}},
    {"anyOf": [{"type": "integer"}, {"required": ["a"]}]},
    {"allOf": [{"type": "number"}, {"maximum": 5}]},
    {
        "if": {"properties": {"k": {"const": "s"}}, "required": ["k"]},
        "then": {"required": ["s"]},
        "else": {"type": "object", "required": ["e"]},
    },
]


@pytest.mark.parametrize("schema", SYNTHETIC)
@settings(max_examples=300)
@given(value=JUNK | st.dictionaries(st.sampled_from("abcekps"), JUNK, max_size=4))
def test_the_fast_check_never_accepts_what_fastjsonschema_rejects(
    schema: dict[str, Any], value: object
) -> None:
    if accept_check(schema)(value):
        fastjsonschema.compile(schema, use_default=False, use_formats=False)(value)


@pytest.mark.parametrize(
    ("schema", "value", "proven"),
    [
        # exact Python types: 3.0 is an integer to fastjsonschema, left to it here
        ({"type": "integer"}, 3, True),
        ({"type": "integer"}, 3.0, False),
        ({"type": "number"}, True, False),
        ({"type": "number", "maximum": 5}, math.nan, False),
        ({"type": "number"}, math.inf, True),
        ({"type": "string"}, Name("a"), False),
        # a keyword not understood proves nothing; a field it guards must be absent
        ({"type": "string", "format": "date-time"}, "now", True),
        ({"type": "string", "contentEncoding": "base64"}, "a", False),
        ({"type": "object", "properties": {"p": {"pattern": "x"}}}, {"q": 1}, True),
        ({"type": "object", "properties": {"p": {"pattern": "x"}}}, {"p": "x"}, False),
        ({"type": "object", "additionalProperties": False}, {"q": 1}, False),
        # if/then/else both ways
        (SYNTHETIC[-1], {"k": "s", "s": 1}, True),
        (SYNTHETIC[-1], {"k": "t", "e": 1}, True),
        (SYNTHETIC[-1], {"k": "s", "e": 1}, False),
    ],
)
def test_what_the_fast_check_proves(schema: dict[str, Any], value: object, proven: bool) -> None:
    assert accept_check(schema)(value) is proven


# A schema set with what the event schemas avoid: a name without the identifier pattern (its
# control characters are checked after the schema), a number without bounds, an object field
# that may nest, and no extra fields allowed.
ODD_SCHEMA = {
    "type": "object",
    "required": ["event_id", "type", "ts", "queue"],
    "properties": {
        "event_id": IDENTIFIER,
        "type": {"const": "call.offered"},
        "ts": {"type": ["string", "number"], "maxLength": 64},
        "queue": {"type": "string", "minLength": 1, "maxLength": 200},
        "wait_s": {"type": "number"},
        "meta": {"type": "object"},
    },
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def odd_validators(tmp_path_factory: pytest.TempPathFactory) -> tuple[EventValidator, ...]:
    directory: Path = tmp_path_factory.mktemp("schemas")
    (directory / "call.offered.schema.json").write_text(json.dumps(ODD_SCHEMA))
    return EventValidator(directory), EventValidator(directory, fast_path=False)


ODD = {"event_id": "e-1", "type": "call.offered", "ts": "2024-03-05T09:30:00Z", "queue": "q"}


@settings(max_examples=1000)
@given(candidates({"call.offered": ODD_SCHEMA}))
# Each caught only by a check after the schema.
@example(candidate={**ODD, "wait_s": math.nan})
@example(candidate={**ODD, "wait_s": -math.inf})
@example(candidate={**ODD, "wait_s": 1e9 + 1})
@example(candidate={**ODD, "queue": "a\x1fb"})
@example(candidate={**ODD, "meta": {"a": _nest(MAX_NESTING)}})
def test_checks_after_the_schema_hold_on_the_fast_path(
    odd_validators: tuple[EventValidator, EventValidator], candidate: dict[Any, Any]
) -> None:
    fast, reference = odd_validators
    assert fast.validate(candidate, now_us=NOW_US) == reference.validate(candidate, now_us=NOW_US)
