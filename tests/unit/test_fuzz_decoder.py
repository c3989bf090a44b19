"""Fuzzing the edge: bytes in, every input item accounted for, nothing downstream crashes.

``tests/unit/test_validation.py`` and ``test_decode.py`` already show that decoding and
validating never raise and that each rejection is well formed. This file adds what the worker
and the read model depend on:

- accounting: for any message, accepted + rejected equals the items it carried (one for a
  message that is not a JSON array), each index once, every reason in ``REASONS``;
- whatever goes out again serialises: the dead-letter record, and the accepted events the
  worker forwards in batches;
- an accepted event never crashes the processor or the read model (a "poison pill" would stop
  the worker on every restart), however odd its names and numbers.
"""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api.readmodel import ReadModel
from api.views import ModelReader
from stream.decode import INVALID_JSON, Rejection, decode_body, decode_message
from stream.ingress import validate_batch
from stream.kpi.config import CentreConfig
from stream.kpi.timeutil import US_PER_S
from stream.processor import MessageProcessor
from stream.validation import INVALID_VALUE, MAX_NESTING, REASONS, EventValidator
from tests.unit.test_validation import JSON_VALUES, NOW_US, _event_like, _nest, event

VALIDATOR = EventValidator()
CENTRE = CentreConfig()
NOW = "2024-03-05T09:30:00Z"  # NOW_US as RFC 3339

Event = dict[str, Any]


# -- items and how to break them ------------------------------------------------------------

# Strings a PBX or a hostile client might send as a name: empty, huge, control characters
# (the record-key separator among them), every Unicode plane.
ODD_TEXT = st.one_of(
    st.text(min_size=1, max_size=20),
    st.text(alphabet=st.characters(max_codepoint=0x20), min_size=1, max_size=5),
    st.sampled_from(["\x1f", "a\x1fb", "q\x00", "x" * 200, "x" * 201, "x" * 100_000, "é✓😀"]),
)
EXTREMES = st.sampled_from([0, -0.0, 5e-324, 1.7976931348623157e308, -1e308, 1e10, 604800.0000001])
ODD_NUMBER = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**64 - 1),  # orjson's range
    EXTREMES,
    EXTREMES,  # twice: sums of two extremes are where overflow hides
)
DEPTHS = st.sampled_from([1, 2, MAX_NESTING, MAX_NESTING + 1, 200])


@st.composite
def items(draw: st.DrawFn) -> object:
    """One array item: a valid event, a mutated one, an odd-named one, a deep one, or junk."""
    kind = draw(st.sampled_from(["valid", "mutated", "odd", "deep", "unknown", "junk"]))
    template = event(draw(st.sampled_from(sorted(VALIDATOR.event_types))))
    if kind == "valid":
        return template
    if kind == "mutated":
        return draw(_event_like(JSON_VALUES))
    if kind == "odd":
        name = draw(st.sampled_from(["queue", "call_id", "agent_id", "event_id", "score"]))
        return {**template, name: draw(ODD_TEXT if name != "score" else ODD_NUMBER)}
    if kind == "deep":
        return {**template, "meta": _nest(draw(DEPTHS))}
    if kind == "unknown":
        return {**template, draw(st.text(max_size=10)): draw(JSON_VALUES)}
    return draw(JSON_VALUES)


def as_bytes(value: object) -> bytes:
    return orjson.dumps(value)


# Text edits that make a JSON document invalid, wherever they land.
BREAKERS = [b"NaN", b"Infinity", b"-Infinity", b"\xff", b"{", b'"\\ud800"', b"1e400", b",]"]


# -- accounting ----------------------------------------------------------------------------


def outcomes(value: bytes) -> tuple[list[tuple[int, Event]], list[Rejection]]:
    candidates, rejections = decode_message(value)
    accepted: list[tuple[int, Event]] = []
    for index, candidate in candidates:
        result = VALIDATOR.validate(candidate, now_us=NOW_US)
        if isinstance(result, Rejection):
            rejections.append(Rejection(result.reason, result.detail, result.event, index=index))
        else:
            accepted.append((index, result))
    return accepted, rejections


def assert_goes_out(accepted: list[tuple[int, Event]], rejections: list[Rejection]) -> None:
    """What the worker sends on: DLQ records and forwarded batches both serialise."""
    for rejection in rejections:
        assert rejection.reason in REASONS
        assert rejection.detail
        record = orjson.loads(orjson.dumps(rejection.to_dlq(source="worker", received_at=NOW)))
        assert record["reason"] == rejection.reason
        assert "event" in record or "raw" in record
    orjson.dumps([candidate for _, candidate in accepted])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(items(), max_size=12), st.booleans())
def test_every_item_of_a_message_is_accepted_or_refused_once(
    batch: list[object], single: bool
) -> None:
    document = batch[0] if single and batch else batch
    accepted, rejections = outcomes(as_bytes(document))
    assert_goes_out(accepted, rejections)
    if not isinstance(document, list):  # one item that is not an array: one outcome
        assert len(accepted) + len(rejections) == 1
        return
    indexes = sorted([i for i, _ in accepted] + [r.index for r in rejections])  # type: ignore[misc]
    assert indexes == list(range(len(document)))


@settings(max_examples=200, deadline=None)
@given(st.lists(items(), min_size=1, max_size=6), st.sampled_from(BREAKERS), st.data())
def test_a_message_broken_anywhere_is_one_invalid_json_rejection(
    batch: list[object], breaker: bytes, data: st.DataObject
) -> None:
    text = as_bytes(batch)
    at = data.draw(st.integers(1, len(text) - 1))
    value = text[:at] + breaker + text[at:]
    accepted, rejections = outcomes(value)
    assert_goes_out(accepted, rejections)
    if not accepted and len(rejections) == 1 and rejections[0].reason == INVALID_JSON:
        return
    # A few insertions still parse (e.g. '{' inside a string): then every item is accounted for.
    parsed = orjson.loads(value)
    count = len(parsed) if isinstance(parsed, list) else 1
    assert len(accepted) + len(rejections) == count


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(items().map(as_bytes), st.sampled_from(BREAKERS)), max_size=10))
def test_every_ndjson_line_is_accepted_or_refused_once(lines: list[bytes]) -> None:
    body = b"\n".join(lines)
    candidates, rejections = decode_body(body, ndjson=True)
    accepted = []
    for index, candidate in candidates:
        result = VALIDATOR.validate(candidate, now_us=NOW_US)
        if isinstance(result, Rejection):
            rejections.append(Rejection(result.reason, result.detail, result.event, index=index))
        else:
            accepted.append((index, result))
    assert_goes_out(accepted, rejections)
    non_blank = [line for line in body.split(b"\n") if line.strip()]
    indexes = sorted([i for i, _ in accepted] + [r.index for r in rejections])  # type: ignore[misc]
    assert indexes == list(range(len(non_blank)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(items(), max_size=5).map(as_bytes) | st.sampled_from([b"", b"{"])))
def test_the_workers_batch_step_accounts_for_every_item(messages: list[bytes]) -> None:
    # Stage one of the worker itself: many input messages, one batch, the real clock.
    now_ts = time.time()
    fresh = [orjson.dumps(_restamped(orjson.loads(m), now_ts)) if m[:1] == b"[" else m
             for m in messages]  # fmt: skip
    routed, rejections = validate_batch(VALIDATOR, fresh)
    assert_goes_out([], rejections)
    expected = sum(len(orjson.loads(m)) if m[:1] == b"[" else 1 for m in fresh)
    assert sum(len(group) for group in routed.values()) + len(rejections) == expected


def _restamped(batch: list[object], now_ts: float) -> list[object]:
    """Give the events of a batch the current time, so the worker's clock accepts them."""
    return [{**item, "ts": now_ts} if isinstance(item, dict) and "ts" in item else item
            for item in batch]  # fmt: skip


# -- big, deep and odd inputs, by hand ---------------------------------------------------------


def _with(base: Event, **fields: Any) -> Event:
    return {**base, **fields}


OFFERED = event("call.offered")


@pytest.mark.parametrize(
    ("value", "accepted", "reasons"),
    [
        # a valid neighbour on each side of an item nested one level too deep
        (as_bytes([OFFERED, _with(OFFERED, meta=_nest(MAX_NESTING + 1)), OFFERED]), 2,
         [INVALID_VALUE]),
        # nesting past orjson's parser limit (1024): the whole message is not JSON
        (as_bytes([OFFERED]).replace(b"]", b"," + b"[" * 1100 + b"]" * 1100 + b"]"), 0,
         [INVALID_JSON]),
        # a 5 MB unknown field: kept, the contract is extended, never renamed
        (as_bytes([_with(OFFERED, notes="n" * 5_000_000)]), 1, []),
        # a 5 MB queue name: refused alone (identifiers are at most 200 characters)
        (as_bytes([_with(OFFERED, queue="q" * 5_000_000), OFFERED]), 1, [INVALID_VALUE]),
        # 10,000 events in one message: all accounted for
        (as_bytes([OFFERED] * 10_000), 10_000, []),
        # NaN and Infinity as literals inside one item: the message is not JSON
        (as_bytes([OFFERED]).replace(b'"ts"', b'"x":NaN,"ts"'), 0, [INVALID_JSON]),
        (as_bytes([OFFERED]).replace(b'"ts"', b'"x":-Infinity,"ts"'), 0, [INVALID_JSON]),
        # wrong types at every level of the message
        (b"[1, \"x\", null, true, [], {}]", 0, ["not_an_object"] * 5 + ["missing_field"]),
        # unknown fields of every JSON type on a valid event
        (as_bytes([_with(OFFERED, a=None, b=[1], c={"d": 1.5}, e=True, f="")]), 1, []),
    ],
)  # fmt: skip
def test_big_deep_and_odd_messages(value: bytes, accepted: int, reasons: list[str]) -> None:
    got, rejections = outcomes(value)
    assert_goes_out(got, rejections)
    assert len(got) == accepted
    assert sorted(r.reason for r in rejections) == sorted(reasons)


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        # the record-key separator (U+001F) inside a name would split the state table's keys
        ({"queue": "sales\x1f1709287200000000"}, "'queue' must not contain control"),
        ({"call_id": "c\x1fd"}, "'call_id' must not contain control"),
        ({"agent_id": "a\x1f"}, "'agent_id' must not contain control"),
        # other control characters: NUL, newline (log lines), escape (terminals)
        ({"queue": "q\x00"}, "'queue' must not contain control"),
        ({"event_id": "e\n1"}, "'event_id' must not contain control"),
        ({"call_id": "\x1b[31mred"}, "'call_id' must not contain control"),
        # a finite number so large that a sum of two overflows to infinity
        ({"type": "survey.response", "survey": "ces", "score": 1e308}, "'score' must be between"),
        ({"type": "survey.response", "survey": "nps", "score": -1e300}, "'score' must be between"),
        ({"type": "survey.response", "survey": "servqual", "dimension": "empathy",
          "expectation": 1e200, "perception": 1}, "'expectation' must be between"),
    ],
)  # fmt: skip
def test_values_that_would_break_the_records_are_refused(fields: Event, detail: str) -> None:
    base = event(str(fields.get("type", "call.answered")))
    candidate = {**base, **fields}
    if candidate["type"] == "survey.response" and candidate["survey"] == "servqual":
        candidate.pop("score", None)
    result = VALIDATOR.validate(candidate, now_us=NOW_US)
    assert isinstance(result, Rejection), result
    assert result.reason == INVALID_VALUE
    assert detail in result.detail


# -- accepted events never crash what comes after ------------------------------------------


@st.composite
def accepted_events(draw: st.DrawFn) -> Event:
    """Events the validator accepts, with odd names and numbers wherever the schema allows."""
    while True:
        kind = draw(st.sampled_from(sorted(VALIDATOR.event_types)) | st.just("survey.response"))
        candidate = event(kind)
        if kind == "survey.response":
            candidate["survey"] = draw(st.sampled_from(["csat", "nps", "ces", "esat"]))
        # Distinct ids (or the same one, now and then): duplicates would hide sums.
        candidate["event_id"] = f"f{draw(st.integers(0, 10**6))}"
        for name in ("queue", "call_id", "agent_id", "event_id"):
            if name in candidate and draw(st.booleans()):
                candidate[name] = draw(ODD_TEXT)
        for name in ("score", "scale_max", "expectation", "perception", "wait_s", "talk_s"):
            if name in candidate and draw(st.booleans()):
                candidate[name] = draw(ODD_NUMBER)
        # Within two minutes: events share minutes, so their sums meet in one record.
        candidate["ts"] = NOW_US / US_PER_S - draw(st.integers(0, 120))
        result = VALIDATOR.validate(candidate, now_us=NOW_US)
        if not isinstance(result, Rejection):
            return result


def _ces(event_id: str, score: float) -> Event:
    candidate = {**event("survey.response"), "survey": "ces", "score": score, "event_id": event_id}
    result = VALIDATOR.validate(candidate, now_us=NOW_US)
    return result if isinstance(result, dict) else candidate  # refused: never processed below


# A case the generator seldom reaches, so it is explicit: two finite scores whose sum
# overflows, then a third in the same minute after the JSON round trip (the sum came back as
# null and the processor crashed on it). The validator now refuses the first two.
OVERFLOW = [[_ces("v1", 1.7976931348623157e308), _ces("v2", 1.7976931348623157e308)],
            [_ces("v3", 1.0)]]  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(accepted_events(), min_size=1, max_size=4), min_size=1, max_size=4))
@example(OVERFLOW)
def test_accepted_events_never_crash_the_processor_or_the_read_model(
    messages: list[list[Event]],
) -> None:
    messages = [[e for e in m if "ts_us" in e] for m in messages]  # only what was accepted
    store: dict[str, Any] = {}
    processor = MessageProcessor(CENTRE)
    for offset, message in enumerate(messages):
        processor.process(store, message, offset=offset, partition=0, now_us=NOW_US)
        # What a restarted worker reads back from the changelog (JSON) must still work.
        store = {key: orjson.loads(orjson.dumps(value)) for key, value in store.items()}
    model = ReadModel()
    for key, value in store.items():
        model.apply(key, value)
    reader = ModelReader(model, CENTRE)
    # The hour that holds every event: each minute they touched is merged and read.
    total = reader.centre_kpis("1h", NOW_US + 60 * US_PER_S)["total"]
    for figure in total.values():
        assert not (isinstance(figure, float) and not math.isfinite(figure)), total
    assert set(model.known_queues()) <= {e["queue"] for m in messages for e in m if "queue" in e}
