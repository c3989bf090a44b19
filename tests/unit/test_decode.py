"""Bytes to candidate events: Kafka message values and HTTP ingest bodies."""

from __future__ import annotations

import orjson
import pytest

from stream.decode import (
    DLQ_EVENT_MAX_BYTES,
    INVALID_JSON,
    NOT_AN_OBJECT,
    RAW_MAX_CHARS,
    Rejection,
    decode_body,
    decode_message,
)

EVENT_A = {"event_id": "a", "type": "call.offered"}
EVENT_B = {"event_id": "b", "type": "call.answered"}


def _reasons(rejections: list[Rejection]) -> list[tuple[int | None, str]]:
    return [(rejection.index, rejection.reason) for rejection in rejections]


@pytest.mark.parametrize(
    ("value", "candidates", "rejections"),
    [
        # one event object: index 0
        (b'{"event_id": "a", "type": "call.offered"}', [(0, EVENT_A)], []),
        # micro-batch: indexes are array positions
        (orjson.dumps([EVENT_A, EVENT_B]), [(0, EVENT_A), (1, EVENT_B)], []),
        # one bad item: the good neighbours still decode, the bad one keeps its index
        (orjson.dumps([EVENT_A, 42, EVENT_B]), [(0, EVENT_A), (2, EVENT_B)], [(1, NOT_AN_OBJECT)]),
        # nested array inside a batch is not an event either
        (orjson.dumps([[EVENT_A]]), [], [(0, NOT_AN_OBJECT)]),
        # an empty batch is no events and no error
        (b"[]", [], []),
        # whitespace around the document is fine
        (b' \n{"event_id": "a", "type": "call.offered"}\r\n', [(0, EVENT_A)], []),
        # no value at all (tombstone) or an empty one
        (None, [], [(None, INVALID_JSON)]),
        (b"", [], [(None, INVALID_JSON)]),
        # truncated JSON
        (b'{"event_id": "a"', [], [(None, INVALID_JSON)]),
        # NaN and Infinity are not JSON
        (b'{"wait_s": NaN}', [], [(None, INVALID_JSON)]),
        (b"[Infinity]", [], [(None, INVALID_JSON)]),
        # a number too large for a double
        (b'{"wait_s": 1e400}', [], [(None, INVALID_JSON)]),
        # invalid UTF-8, and a lone surrogate escape
        (b'{"queue": "\xff"}', [], [(None, INVALID_JSON)]),
        (b'{"queue": "\\ud800"}', [], [(None, INVALID_JSON)]),
        # a UTF-8 byte order mark is refused, not skipped
        (b'\xef\xbb\xbf{"event_id": "a"}', [], [(None, INVALID_JSON)]),
        # two documents in one message
        (b"{} {}", [], [(None, INVALID_JSON)]),
        # nesting beyond orjson's depth limit is invalid JSON, not a crash
        (b"[" * 5000 + b"]" * 5000, [], [(None, INVALID_JSON)]),
        (b'{"a":' * 2000 + b"1" + b"}" * 2000, [], [(None, INVALID_JSON)]),
        # valid JSON that is not an event object
        (b'"call.offered"', [], [(None, NOT_AN_OBJECT)]),
        (b"null", [], [(None, NOT_AN_OBJECT)]),
        (b"17", [], [(None, NOT_AN_OBJECT)]),
    ],
)
def test_decode_message(
    value: bytes | None,
    candidates: list[tuple[int, object]],
    rejections: list[tuple[int | None, str]],
) -> None:
    got_candidates, got_rejections = decode_message(value)
    assert got_candidates == candidates
    assert _reasons(got_rejections) == rejections


LINE_A = orjson.dumps(EVENT_A)
LINE_B = orjson.dumps(EVENT_B)
BOTH = [(0, EVENT_A), (1, EVENT_B)]


@pytest.mark.parametrize(
    ("body", "candidates", "rejections"),
    [
        # one value a line, index counts lines from 0
        (LINE_A + b"\n" + LINE_B + b"\n", BOTH, []),
        # blank lines (and whitespace-only ones) are skipped and not counted
        (b"\n" + LINE_A + b"\n \t\n\n" + LINE_B, BOTH, []),
        # CRLF line ends
        (LINE_A + b"\r\n" + LINE_B + b"\r\n", BOTH, []),
        # a bad line is rejected alone, with its index; the lines around it still decode
        (LINE_A + b'\n{"event_id": \n' + LINE_B, [(0, EVENT_A), (2, EVENT_B)], [(1, INVALID_JSON)]),
        # a line holding an array is not an event (NDJSON is one event a line)
        (b"[" + LINE_A + b"]\n" + LINE_B, [(1, EVENT_B)], [(0, NOT_AN_OBJECT)]),
        # two bad lines: each rejected with its own index
        (b"1\n" + LINE_A + b"\n{", [(1, EVENT_A)], [(0, NOT_AN_OBJECT), (2, INVALID_JSON)]),
        # an empty body is no events and no error
        (b"", [], []),
        (b"\n\n", [], []),
    ],
)
def test_decode_body_ndjson(
    body: bytes,
    candidates: list[tuple[int, object]],
    rejections: list[tuple[int | None, str]],
) -> None:
    got_candidates, got_rejections = decode_body(body, ndjson=True)
    assert got_candidates == candidates
    assert _reasons(got_rejections) == rejections


@pytest.mark.parametrize(
    ("body", "candidates", "rejections"),
    [
        # the usual case: a JSON array
        (orjson.dumps([EVENT_A, EVENT_B]), [(0, EVENT_A), (1, EVENT_B)], []),
        # a single object is accepted too
        (orjson.dumps(EVENT_A), [(0, EVENT_A)], []),
        # a string item in the array: rejected alone
        (orjson.dumps(["x", EVENT_B]), [(1, EVENT_B)], [(0, NOT_AN_OBJECT)]),
        # an empty body is an error here: a JSON document was promised
        (b"", [], [(None, INVALID_JSON)]),
        (b"  \n", [], [(None, INVALID_JSON)]),
        # NDJSON sent without saying so is two documents: invalid JSON
        (b'{"event_id": "a"}\n{"event_id": "b"}', [], [(None, INVALID_JSON)]),
    ],
)
def test_decode_body_json(
    body: bytes,
    candidates: list[tuple[int, object]],
    rejections: list[tuple[int | None, str]],
) -> None:
    got_candidates, got_rejections = decode_body(body, ndjson=False)
    assert got_candidates == candidates
    assert _reasons(got_rejections) == rejections


@pytest.mark.parametrize(
    ("value", "raw"),
    [
        # undecodable bytes come back as text, bad bytes replaced
        (b'{"queue": "\xff"}', '{"queue": "\ufffd"}'),
        # long input is cut at 4096 characters
        (b"{" + b"x" * 10_000, "{" + "x" * (RAW_MAX_CHARS - 1)),
        # multi-byte characters count as one each
        ("{é".encode() * 5000, ("{é" * 5000)[:RAW_MAX_CHARS]),
    ],
)
def test_invalid_json_keeps_raw_text(value: bytes, raw: str) -> None:
    _, (rejection,) = decode_message(value)
    assert rejection.raw == raw
    assert rejection.event is None


def test_rejection_detail_names_the_position() -> None:
    _, rejections = decode_body(b'{"a": 1}\n\n[1]\nnot json', ndjson=True)
    assert [r.detail.split(" is ")[0] for r in rejections] == ["NDJSON record 1", "NDJSON record 2"]
    _, (item,) = decode_message(b'[{"a": 1}, true]')
    assert item.detail == "item 1 is a JSON boolean: expected an event object"


def _nested_list(depth: int) -> list[object]:
    root: list[object] = []
    node = root
    for _ in range(depth - 1):
        child: list[object] = []
        node.append(child)
        node = child
    return root


PLACEHOLDER = object()


@pytest.mark.parametrize(
    ("rejection", "key", "value"),
    [
        # a parsed value travels as "event"
        (Rejection("not_an_object", "d", event=[1, 2], index=3), "event", [1, 2]),
        # a JSON null is still an event, not a missing one
        (Rejection("not_an_object", "d", event=None, index=0), "event", None),
        # undecodable input travels as "raw"
        (Rejection("invalid_json", "d", raw="{oops"), "raw", "{oops"),
        # too deep for orjson to write: replaced by a note, so the DLQ producer never fails
        (Rejection("invalid_value", "d", event={"x": _nested_list(300)}), "raw", PLACEHOLDER),
        # non-string keys only come from Python callers, and JSON cannot hold them
        (Rejection("not_an_object", "d", event={1: "a"}), "raw", PLACEHOLDER),
    ],
)
def test_to_dlq(rejection: Rejection, key: str, value: object) -> None:
    record = rejection.to_dlq(source="http", received_at="2024-03-05T09:30:00Z")
    assert record == {
        "reason": rejection.reason,
        "detail": "d",
        "source": "http",
        "received_at": "2024-03-05T09:30:00Z",
        "index": rejection.index,
        key: record[key] if value is PLACEHOLDER else value,
    }
    assert isinstance(orjson.loads(orjson.dumps(record)), dict)


def test_an_event_too_big_for_a_dead_letter_record_travels_truncated() -> None:
    # Near Kafka's 1 MiB message limit: whole, its DLQ record would be refused by the broker.
    event = {"event_id": "e1", "type": "call.offered", "note": "x" * 1_000_000}
    encoded = orjson.dumps(event)
    record = Rejection("invalid_value", "d", event=event, index=0).to_dlq(
        source="worker", received_at="2024-03-05T09:30:00Z"
    )
    assert "event" not in record
    assert record["truncated_from_bytes"] == len(encoded)
    assert encoded.decode().startswith(str(record["raw"]))
    assert len(str(record["raw"])) == RAW_MAX_CHARS
    assert len(orjson.dumps(record)) < DLQ_EVENT_MAX_BYTES


def test_an_event_just_within_the_dead_letter_limit_travels_whole() -> None:
    event = {"note": "x" * (DLQ_EVENT_MAX_BYTES - len(b'{"note":""}'))}
    assert len(orjson.dumps(event)) == DLQ_EVENT_MAX_BYTES
    record = Rejection("invalid_value", "d", event=event).to_dlq(source="api", received_at="t")
    assert record["event"] == event
    assert "truncated_from_bytes" not in record
