"""Candidate events to validated events or rejections, one reason label per failure."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.decode import Rejection, decode_body, decode_message
from stream.kpi.timeutil import US_PER_S, us_to_rfc3339
from stream.validation import MAX_NESTING, REASONS, EventValidator

VALIDATOR = EventValidator()
# 2024-03-05T09:30:00Z: every example below is within a few hours of it.
NOW_US = 1_709_631_000 * US_PER_S
BASE = {"event_id": "e-1", "ts": "2024-03-05T09:30:00Z"}
CALL = {**BASE, "queue": "billing", "call_id": "c-1"}
NAN = math.nan
INF = math.inf


def _nest(levels: int) -> list[object]:
    """A list nested ``levels`` deep, built without recursion."""
    root: list[object] = []
    node = root
    for _ in range(levels - 1):
        child: list[object] = []
        node.append(child)
        node = child
    return root


def event(event_type: str, **fields: Any) -> dict[str, Any]:
    """A valid event of ``event_type``; ``fields`` override, and a field set to ... is removed."""
    minimal: dict[str, dict[str, Any]] = {
        "call.offered": CALL,
        "call.answered": {**CALL, "agent_id": "a-1"},
        "call.abandoned": CALL,
        "call.exited": {**CALL, "reason": "timeout"},
        "call.transferred": {**CALL, "agent_id": "a-1", "to_queue": "disputes"},
        "call.ended": {**CALL, "agent_id": "a-1", "talk_s": 120},
        "call.wrapup_ended": {**CALL, "agent_id": "a-1", "acw_s": 30},
        "call.resolved": {**CALL, "resolved": True},
        "survey.response": {**BASE, "queue": "billing", "survey": "csat", "score": 4},
        "agent.state": {**BASE, "agent_id": "a-1", "state": "available"},
        "ticket.opened": {**BASE, "ticket_id": "t-1", "queue": "billing"},
        "ticket.first_response": {**BASE, "ticket_id": "t-1", "queue": "billing"},
        "ticket.resolved": {**BASE, "ticket_id": "t-1", "queue": "billing"},
        "kb.article_viewed": {**BASE, "article_id": "kb-1"},
        "customer.acquired": {**BASE, "customer_id": "cu-1"},
        "customer.churned": {**BASE, "customer_id": "cu-1"},
    }
    merged = {"type": event_type, **minimal[event_type], **fields}
    return {key: value for key, value in merged.items() if value is not ...}


@pytest.mark.parametrize(
    ("candidate", "ts_us"),
    [
        # the minimal event of every type, ts in UTC with Z
        *[(event(t), NOW_US) for t in sorted(VALIDATOR.event_types)],
        # a positive offset is subtracted
        (event("call.offered", ts="2024-03-05T10:30:00+01:00"), NOW_US),
        # a negative offset, and fractional seconds down to the microsecond
        (event("call.offered", ts="2024-03-05T04:30:00.000001-05:00"), NOW_US + 1),
        # lower-case t and z, as RFC 3339 allows
        (event("call.offered", ts="2024-03-05t09:30:00z"), NOW_US),
        # epoch seconds as an integer, and as a float with a fraction
        (event("call.offered", ts=1_709_631_000), NOW_US),
        (event("call.offered", ts=1_709_631_000.25), NOW_US + 250_000),
        # every optional field of call.offered
        (event("call.offered", caller="h:1", channel="callback", agent_id="a-1"), NOW_US),
        # durations at both ends of their range: 0 and exactly one week
        (event("call.answered", wait_s=0), NOW_US),
        (event("call.ended", talk_s=604800, hold_s=0.5), NOW_US),
        # identifiers at exactly 1 and 200 characters
        (event("call.offered", queue="q", call_id="c" * 200), NOW_US),
        # transferred to an agent only, or to both
        (event("call.transferred", to_queue=..., to_agent="a-2"), NOW_US),
        (event("call.transferred", to_agent="a-2"), NOW_US),
        # servqual needs no score, its own fields instead
        (
            event(
                "survey.response",
                survey="servqual",
                score=...,
                dimension="empathy",
                expectation=6,
                perception=5.5,
            ),
            NOW_US,
        ),
        # survey tied to a call and agent, custom scale
        (event("survey.response", survey="nps", score=10, scale_max=10, call_id="c"), NOW_US),
        # agent in 500 queues (the limit), with a pause reason
        (event("agent.state", state="paused", queues=["q"] * 500, reason="lunch"), NOW_US),
        # social is a ticket channel; contacts as 2.0 is an integer in JSON Schema
        (event("ticket.resolved", channel="social", contacts=2.0), NOW_US),
        # kb view with a queue and read time
        (event("kb.article_viewed", queue="billing", read_s=12.5), NOW_US),
        # unknown extra fields are kept: the contract is extended, never renamed
        (event("call.offered", ivr_path=["menu", "2"], meta={"a": {"b": 1}}), NOW_US),
        # nested exactly MAX_NESTING levels deep is still accepted
        (event("call.offered", meta=_nest(MAX_NESTING), extra=None), NOW_US),
    ],
)
def test_valid_events_get_ts_us(candidate: dict[str, Any], ts_us: int) -> None:
    result = VALIDATOR.validate(candidate, now_us=NOW_US)
    assert result == {**candidate, "ts_us": ts_us}
    assert "ts_us" not in candidate  # a copy, not the input mutated


REJECTIONS = [
    # not valid JSON at all (through decode)
    (b'{"type": "call.offered"', "invalid_json", "message is not valid JSON"),
    # valid JSON, but not an object
    (b"[1]", "not_an_object", "item 0 is a JSON number"),
    ("call.offered", "not_an_object", "event is a JSON string"),
    (None, "not_an_object", "event is a JSON null"),
    # type: missing, not a string, not a known type
    (event("call.offered", type=...), "missing_field", "event: field 'type' is required"),
    (event("call.offered", type=["call.offered"]), "wrong_type", "'type' must be a string"),
    (event("call.offered", type="call.rang"), "unknown_type", "'call.rang' is not a known"),
    (event("call.offered", type=""), "unknown_type", "type '' is not a known event type"),
    # common fields missing
    (event("call.offered", event_id=...), "missing_field", "field 'event_id' is required"),
    (event("call.offered", ts=...), "missing_field", "call.offered: field 'ts' is required"),
    # per-type required fields
    (event("call.answered", agent_id=...), "missing_field", "field 'agent_id' is required"),
    (event("call.ended", talk_s=...), "missing_field", "call.ended: field 'talk_s' is req"),
    (event("call.exited", reason=...), "missing_field", "field 'reason' is required"),
    (event("survey.response", queue=...), "missing_field", "field 'queue' is required"),
    (event("kb.article_viewed", article_id=...), "missing_field", "'article_id' is requ"),
    (event("customer.churned", customer_id=...), "missing_field", "'customer_id' is req"),
    (event("ticket.opened", ticket_id=...), "missing_field", "'ticket_id' is required"),
    # score is required unless the survey is servqual
    (event("survey.response", score=...), "missing_field", "field 'score' is required"),
    # servqual needs its three fields
    (
        event("survey.response", survey="servqual", dimension="empathy", expectation=5),
        "missing_field",
        "field 'perception' is required",
    ),
    # a transfer must say where to
    (
        event("call.transferred", to_queue=...),
        "missing_field",
        "one of fields 'to_queue', 'to_agent' is required",
    ),
    # wrong JSON types name the field and both types
    (event("call.ended", talk_s="120"), "wrong_type", "'talk_s' must be a number, got str"),
    (event("call.offered", queue=7), "wrong_type", "'queue' must be a string, got number"),
    (event("call.resolved", resolved="yes"), "wrong_type", "'resolved' must be a boolean"),
    (event("agent.state", queues="q1"), "wrong_type", "'queues' must be an array"),
    (event("agent.state", queues=["q", 3]), "wrong_type", "'queues[1]' must be a string"),
    (event("ticket.resolved", contacts=1.5), "wrong_type", "'contacts' must be an integer"),
    (event("call.offered", ts={"s": 1}), "wrong_type", "'ts' must be a string or a number"),
    # bool is an int in Python, never a number in JSON
    (event("call.answered", wait_s=True), "wrong_type", "'wait_s' must be a number, got bool"),
    (event("call.ended", talk_s=False), "wrong_type", "'talk_s' must be a number"),
    (event("ticket.resolved", contacts=True), "wrong_type", "'contacts' must be an integer"),
    (event("survey.response", score=True), "wrong_type", "'score' must be a number"),
    (event("call.offered", ts=True), "wrong_type", "'ts' must be a string or a number"),
    # durations: negative, over a week, NaN and infinity (Python callers only)
    (event("call.answered", wait_s=-0.001), "invalid_value", "'wait_s' must be bigger than"),
    (event("call.ended", hold_s=604800.5), "invalid_value", "'hold_s' must be smaller than"),
    (event("call.abandoned", wait_s=NAN), "invalid_value", "'wait_s' must be a finite number"),
    (event("call.wrapup_ended", acw_s=INF), "invalid_value", "'acw_s' must be smaller than"),
    (event("survey.response", score=-INF), "invalid_value", "'score' must be a finite number"),
    # identifiers: empty, and one character over the limit
    (event("call.offered", queue=""), "invalid_value", "'queue' must be longer than"),
    (event("call.offered", call_id="c" * 201), "invalid_value", "'call_id' must be shorter"),
    (event("call.offered", event_id=""), "invalid_value", "'event_id' must be longer than"),
    (event("agent.state", queues=["q", ""]), "invalid_value", "'queues[1]' must be longer"),
    (event("kb.article_viewed", queue=""), "invalid_value", "'queue' must be longer than"),
    # enums
    (event("call.exited", reason="bored"), "invalid_value", "'reason' must be one of"),
    (event("call.offered", channel="social"), "invalid_value", "'channel' must be one of"),
    (event("ticket.opened", channel="fax"), "invalid_value", "'channel' must be one of"),
    (event("agent.state", state="busy"), "invalid_value", "'state' must be one of"),
    (event("survey.response", survey="ces2"), "invalid_value", "'survey' must be one of"),
    (
        event("survey.response", survey="servqual", dimension="x", expectation=1, perception=2),
        "invalid_value",
        "'dimension' must be one of",
    ),
    # other ranges
    (event("survey.response", scale_max=0), "invalid_value", "'scale_max' must be bigger"),
    (event("ticket.resolved", contacts=0), "invalid_value", "'contacts' must be bigger"),
    (event("agent.state", queues=["q"] * 501), "invalid_value", "'queues' must contain less"),
    # extras nested deeper than any event needs (orjson could not re-serialise them)
    (event("call.offered", meta=_nest(MAX_NESTING + 1)), "invalid_value", "'meta' nests"),
    # ts: no offset, not a date, impossible date, absurdly long, non-finite, overflowing
    (event("call.offered", ts="2024-03-05T09:30:00"), "invalid_timestamp", "not RFC 3339"),
    (event("call.offered", ts="2024-03-05T09:30:00.123456"), "invalid_timestamp", "offset"),
    (event("call.offered", ts="yesterday"), "invalid_timestamp", "not RFC 3339"),
    (event("call.offered", ts="2024-02-30T09:30:00Z"), "invalid_timestamp", "not RFC 3339"),
    (event("call.offered", ts="2024-03-05T09:30:00Z" + " " * 60), "invalid_timestamp", "64"),
    (event("call.offered", ts=NAN), "invalid_timestamp", "ts must be finite"),
    (event("call.offered", ts=1e305), "invalid_timestamp", "field 'ts' 1e+305 is out of"),
    # far outside the accepted window (the exact bounds are tested below)
    (event("call.offered", ts="2000-01-01T00:00:00Z"), "too_old", "before now"),
    (event("call.offered", ts=10**400), "too_far_in_future", "after now"),
    (event("call.offered", ts=-(10**400)), "too_old", "before now"),
]


@pytest.mark.parametrize(("candidate", "reason", "detail"), REJECTIONS)
def test_rejections(candidate: object, reason: str, detail: str) -> None:
    (result,) = _outcomes(candidate) if isinstance(candidate, bytes) else [_validate(candidate)]
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert detail in result.detail
    if not isinstance(candidate, bytes):
        assert result.event is candidate  # the DLQ gets the input as it came


def test_every_reason_has_a_row() -> None:
    assert {reason for _, reason, _ in REJECTIONS} == REASONS


DAY_S = 86400
MAX_PAST_US = 8 * DAY_S * US_PER_S
MAX_FUTURE_US = 3600 * US_PER_S


@pytest.mark.parametrize(
    ("ts_us", "outcome"),
    [
        # exactly max_past_s old: accepted
        (NOW_US - MAX_PAST_US, "accepted"),
        # one second older: too old (and one microsecond, to pin the comparison)
        (NOW_US - MAX_PAST_US - US_PER_S, "too_old"),
        (NOW_US - MAX_PAST_US - 1, "too_old"),
        # exactly max_future_s ahead: accepted
        (NOW_US + MAX_FUTURE_US, "accepted"),
        # one second further: too far in the future
        (NOW_US + MAX_FUTURE_US + US_PER_S, "too_far_in_future"),
        (NOW_US + MAX_FUTURE_US + 1, "too_far_in_future"),
        # now itself
        (NOW_US, "accepted"),
    ],
)
def test_ts_bounds(ts_us: int, outcome: str) -> None:
    # An RFC 3339 string, so the bound is exact to the microsecond (a float would round).
    result = VALIDATOR.validate(event("call.offered", ts=us_to_rfc3339(ts_us)), now_us=NOW_US)
    assert (result.reason if isinstance(result, Rejection) else "accepted") == outcome


@pytest.mark.parametrize(
    ("max_past_s", "max_future_s", "age_s", "outcome"),
    [
        # a one-minute past limit: 60 s old passes, 61 s fails
        (60, 3600, 60, "accepted"),
        (60, 3600, 61, "too_old"),
        # no future tolerance at all: now passes, one second ahead fails
        (8 * DAY_S, 0, 0, "accepted"),
        (8 * DAY_S, 0, -1, "too_far_in_future"),
        # fractional limits are honoured
        (0.5, 3600, 1, "too_old"),
    ],
)
def test_configured_bounds(
    max_past_s: float, max_future_s: float, age_s: int, outcome: str
) -> None:
    validator = EventValidator(max_past_s=max_past_s, max_future_s=max_future_s)
    result = validator.validate(event("call.offered", ts=1_709_631_000 - age_s), now_us=NOW_US)
    assert (result.reason if isinstance(result, Rejection) else "accepted") == outcome


def test_array_message_keeps_the_good_events() -> None:
    bad = event("call.answered", agent_id=...)
    body = [event("call.offered"), bad, 3, event("call.abandoned", wait_s=4)]
    outcomes = _outcomes(orjson.dumps(body))
    accepted = [o["type"] for o in outcomes if not isinstance(o, Rejection)]
    rejected = sorted((o.index is None, o.reason) for o in outcomes if isinstance(o, Rejection))
    assert accepted == ["call.offered", "call.abandoned"]
    # decode knows the array index; validation does not (the caller keeps it with the candidate)
    assert rejected == [(False, "not_an_object"), (True, "missing_field")]


def test_ndjson_with_a_bad_line() -> None:
    good = orjson.dumps(event("call.offered"))
    lines = [good, b"{not json", b'{"type": "call.abandoned"}', good]
    candidates, rejections = decode_body(b"\n".join(lines), ndjson=True)
    results = {index: _validate(candidate) for index, candidate in candidates}
    assert [(r.index, r.reason) for r in rejections] == [(1, "invalid_json")]
    assert {i: isinstance(r, Rejection) for i, r in results.items()} == {
        0: False,
        2: True,
        3: False,
    }


def test_validation_does_not_fill_defaults() -> None:
    # hold_s and channel have schema defaults; consumers apply them, the input stays as sent.
    result = VALIDATOR.validate(event("call.ended"), now_us=NOW_US)
    assert not isinstance(result, Rejection)
    assert "hold_s" not in result


def test_huge_values_do_not_blow_up_details() -> None:
    result = VALIDATOR.validate(event("call.offered", queue="q" * 10_000_000), now_us=NOW_US)
    assert isinstance(result, Rejection)
    assert result.reason == "invalid_value"
    assert len(result.detail) < 300


# ---------------------------------------------------------------------------------------------
# Fuzz: decode + validate never raise, and every output is an event or a known rejection.

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["", "x" * 201, "2024-03-05T09:30:00Z", "2024-03-05T09:30:00", "call.ended"])
)
# Only Python callers can hand over these: no JSON text decodes to them.
PYTHON_ONLY_SCALARS = st.sampled_from([NAN, INF, -INF, 10**30, -(10**40), 1e300])


def _json_like(scalars: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    )


FIELDS = [
    "type", "event_id", "ts", "queue", "call_id", "agent_id", "wait_s", "talk_s", "hold_s", "acw_s",
    "read_s", "reason", "to_queue", "to_agent", "resolved", "first_contact", "survey", "score",
    "scale_max", "dimension", "expectation", "perception", "state", "queues", "ticket_id",
    "customer_id", "article_id", "contacts", "channel", "caller",
]  # fmt: skip
# Values that pass a field's check often enough for the fuzzer to reach the checks after it.
PLAUSIBLE: dict[str, st.SearchStrategy[object]] = {
    "type": st.sampled_from(["call.offered", "call.rang", ""]),
    "ts": st.sampled_from(
        [1_709_631_000.5, "2024-03-05T09:30:00+00:00", "2024-03-05T09:30:00", 0, 1e305, NAN]
    ),
    "survey": st.sampled_from(["csat", "nps", "ces", "esat", "servqual"]),
    "queues": st.lists(st.sampled_from(["q", "", 1]), max_size=3),
    "wait_s": st.sampled_from([0, 12.5, 604800, -1, 604801, NAN, True]),
    "state": st.sampled_from(["available", "busy"]),
    "queue": st.sampled_from(["q", "", "q" * 201]),
}


def _mutated(valid: dict[str, Any], changes: list[tuple[str, object]], drop: str) -> object:
    return {key: value for key, value in [*valid.items(), *changes] if key != drop}


def _event_like(values: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """A valid event with up to two fields changed and maybe one dropped: reaches every check."""
    change = st.sampled_from(FIELDS).flatmap(
        lambda name: st.tuples(st.just(name), PLAUSIBLE.get(name, values) | values)
    )
    return st.builds(
        _mutated,
        st.sampled_from(sorted(VALIDATOR.event_types)).map(event),
        st.lists(change | st.tuples(st.text(max_size=8), values), max_size=2),
        st.sampled_from(["", "", "", *FIELDS]),
    )


JSON_VALUES = _json_like(SCALARS)
PYTHON_VALUES = _json_like(SCALARS | PYTHON_ONLY_SCALARS)


def _validate(candidate: object) -> dict[str, Any] | Rejection:
    return VALIDATOR.validate(candidate, now_us=NOW_US)


def _outcomes(message: bytes) -> list[dict[str, Any] | Rejection]:
    candidates, rejections = decode_message(message)
    return [*rejections, *(_validate(candidate) for _, candidate in candidates)]


def _assert_well_formed(result: object) -> None:
    if isinstance(result, Rejection):
        assert result.reason in REASONS
        assert result.detail
        result.to_dlq(source="test", received_at="2024-03-05T09:30:00Z")
    else:
        assert isinstance(result, dict)
        assert isinstance(result["ts_us"], int)
        assert type(result["type"]) is str


@settings(max_examples=300, deadline=None)
@given(_event_like(PYTHON_VALUES) | PYTHON_VALUES)
def test_fuzz_validate_never_raises(candidate: object) -> None:
    _assert_well_formed(_validate(candidate))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.builds(orjson.dumps, _event_like(JSON_VALUES) | JSON_VALUES))
def test_fuzz_decode_and_validate_never_raise(message: bytes) -> None:
    for result in _outcomes(message):
        _assert_well_formed(result)
    for ndjson in (True, False):
        candidates, rejections = decode_body(message, ndjson=ndjson)
        for outcome in [*rejections, *(_validate(c) for _, c in candidates)]:
            _assert_well_formed(outcome)


@pytest.mark.parametrize(
    "candidate",
    [
        # nesting far beyond Python's recursion limit, where a recursive walk would crash
        event("call.offered", meta=_nest(100_000)),
        # a deep value where a number belongs
        event("call.ended", talk_s=_nest(100_000)),
        # a deep value as the type
        {"type": _nest(100_000)},
        # an integer too long for str() (Python limits int-to-str conversion to 4300 digits)
        event("call.offered", ts=10**5000),
        event("call.answered", wait_s=10**5000),
        event("call.offered", type=10**5000),
        # non-string keys (Python callers only)
        dict([*event("call.offered").items(), (1, "x"), (None, "y")]),
        # a 10 MB type string
        event("call.offered", type="t" * 10_000_000),
    ],
)
def test_pathological_inputs_do_not_raise(candidate: object) -> None:
    _assert_well_formed(_validate(candidate))
