"""Bytes to candidate events, and the record of an input that could not become an event.

Decoding only splits and parses: whether an object is a valid event is ``stream.validation``'s
job. Nothing here raises on bad input; every problem becomes a ``Rejection`` that the caller
sends to the dead-letter topic (or, for HTTP ingest, answers with its index).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
RAW_MAX_CHARS = 4096
# UTF-8 needs at most 4 bytes a character: decoding this many bytes always yields enough text.
_RAW_MAX_BYTES = 4 * RAW_MAX_CHARS
# An event bigger than this travels as truncated ``raw`` text: a dead-letter record must stay
# well under Kafka's 1 MiB message limit, or its send would fail, and stage one would retry the
# batch for ever. The whole input stays in the input topic.
DLQ_EVENT_MAX_BYTES = 256 * 1024

Candidates = list[tuple[int, object]]
Decoded = tuple[Candidates, list["Rejection"]]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one input is not an event; ``reason`` is a low-cardinality metric label."""

    reason: str
    detail: str
    event: object | None = None
    raw: str | None = None
    index: int | None = None

    def to_dlq(self, *, source: str, received_at: str) -> dict[str, object]:
        """A JSON-serialisable dead-letter record: the input travels as ``event`` or ``raw``."""
        record: dict[str, object] = {
            "reason": self.reason,
            "detail": self.detail,
            "source": source,
            "received_at": received_at,
            "index": self.index,
        }
        if self.raw is not None:
            record["raw"] = self.raw
            return record
        encoded = _encoded(self.event)
        if encoded is None:
            record["raw"] = "<event not JSON-serialisable: non-string keys or nested too deep>"
        elif len(encoded) > DLQ_EVENT_MAX_BYTES:
            record["raw"] = raw_text(encoded)
            record["truncated_from_bytes"] = len(encoded)
        else:
            record["event"] = self.event
        return record


def _encoded(value: object) -> bytes | None:
    # orjson parses 1024 levels of nesting but writes only 254, and Python callers may pass
    # values JSON cannot hold: the DLQ producer must not be the one to find out.
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return None


def raw_text(data: bytes) -> str:
    """Undecodable input as text for a human: UTF-8 with replacement, at most 4096 characters."""
    return data[:_RAW_MAX_BYTES].decode("utf-8", errors="replace")[:RAW_MAX_CHARS]


def decode_message(value: bytes | None) -> Decoded:
    """One Kafka message value: an event object, or an array of them (a micro-batch)."""
    if not value:
        return [], [Rejection(INVALID_JSON, "message is empty: expected a JSON object or array")]
    return _decode_document(value, what="message")


def decode_body(body: bytes, *, ndjson: bool) -> Decoded:
    """An HTTP ingest body: a JSON array (or one object), or NDJSON with one value a line."""
    if ndjson:
        return _decode_ndjson(body)
    if not body.strip():
        return [], [Rejection(INVALID_JSON, "body is empty: expected a JSON array or object")]
    return _decode_document(body, what="body")


def _decode_document(data: bytes, *, what: str) -> Decoded:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        detail = f"{what} is not valid JSON: {exc}"
        return [], [Rejection(INVALID_JSON, detail, raw=raw_text(data))]
    if isinstance(parsed, dict):
        return [(0, parsed)], []
    if isinstance(parsed, list):
        return _split_array(parsed)
    detail = f"{what} is a JSON {json_type_name(parsed)}: expected an event object or an array"
    return [], [Rejection(NOT_AN_OBJECT, detail, event=parsed)]


def _split_array(items: list[object]) -> Decoded:
    candidates: Candidates = []
    rejections: list[Rejection] = []
    for index, item in enumerate(items):
        if isinstance(item, dict):
            candidates.append((index, item))
        else:
            detail = f"item {index} is a JSON {json_type_name(item)}: expected an event object"
            rejections.append(Rejection(NOT_AN_OBJECT, detail, event=item, index=index))
    return candidates, rejections


def _decode_ndjson(body: bytes) -> Decoded:
    candidates: Candidates = []
    rejections: list[Rejection] = []
    lines = (line for line in body.split(b"\n") if line.strip())
    for index, line in enumerate(lines):
        try:
            parsed = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            detail = f"NDJSON record {index} is not valid JSON: {exc}"
            rejections.append(Rejection(INVALID_JSON, detail, raw=raw_text(line), index=index))
            continue
        if isinstance(parsed, dict):
            candidates.append((index, parsed))
        else:
            detail = f"NDJSON record {index} is a JSON {json_type_name(parsed)}: expected an object"
            rejections.append(Rejection(NOT_AN_OBJECT, detail, event=parsed, index=index))
    return candidates, rejections


def json_type_name(value: object) -> str:
    """The JSON name of a Python value's type, for messages ("boolean", not "bool")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
