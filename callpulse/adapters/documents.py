"""Bodies and export files to the separate payloads inside them.

Exports come in every JSON framing: one document, a JSON array, NDJSON, or documents simply
written one after another (Kinesis Data Firehose's S3 objects: ``{...}{...}``). Each payload
is returned with its index; one that does not parse is returned as ``Unmappable`` in its place,
so its neighbours still count and the refusal names where it was.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from callpulse.adapters.core import Unmappable

Documents = list[tuple[int, object]]  # (index, payload or Unmappable)

_DECODER = json.JSONDecoder()


def json_documents(body: bytes) -> Documents:
    """Payloads of a JSON, JSON-array, NDJSON or concatenated-JSON body."""
    text = _text(body)
    if not text.strip():
        return [(0, Unmappable("the body is empty: expected JSON"))]
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        return _concatenated(text)
    if isinstance(whole, list):
        return list(enumerate(whole))
    return [(0, whole)]


def _concatenated(text: str) -> Documents:
    """NDJSON or ``{...}{...}``: decode one document after another, each on its own."""
    documents: Documents = []
    position, index = 0, 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return documents
        try:
            value, position = _DECODER.raw_decode(text, position)
            documents.append((index, value))
        except json.JSONDecodeError as exc:
            documents.append((index, Unmappable(f"payload {index} is not valid JSON: {exc.msg}")))
            # Resynchronise on the next line: NDJSON keeps its good lines.
            newline = text.find("\n", position)
            if newline < 0:
                return documents
            position = newline + 1
        index += 1


def form_document(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (Twilio's callbacks) as a dict."""
    pairs = parse_qsl(_text(body), keep_blank_values=True, strict_parsing=False)
    return dict(pairs)


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("utf-8", errors="replace")
