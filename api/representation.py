"""What one request gets of a cached answer: ``304``, gzip or the JSON bytes as they are.

Two transparent HTTP features (RFC 9110), both served from what ``api.answers`` stored once per
read-model version and clock second, so no request compresses or hashes anything itself:

- ``If-None-Match`` with the answer's current entity tag: ``304 Not Modified``, no body.
  Answers change at most once a second, so a wallboard polling every second mostly gets these.
- ``Accept-Encoding`` naming gzip (browsers and Grafana do): the stored gzip form, about a
  tenth of the bytes (``Content-Encoding: gzip``); the figures are the same bytes once decoded.

Every answer says ``Vary: Accept-Encoding`` (a shared cache must not serve one encoding for
the other) and ``Cache-Control: no-cache`` (store it, but ask again: revalidation is the 304).
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi.responses import Response

from api.answers import Answer

MEDIA_TYPE = "application/json"
# Below this an answer goes as it is: gzip's header and trailer would eat what it saves.
GZIP_MIN_BYTES = 1024
GZIP_CODINGS = ("gzip", "x-gzip")
GZIP_TAG_SUFFIX = '-gzip"'  # the gzip form is another representation: another strong tag


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether ``Accept-Encoding`` lets us send gzip: named (or ``*``) with a q-value above 0."""
    if not accept_encoding:
        return False
    gzip_q: float | None = None
    any_q: float | None = None
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if coding in GZIP_CODINGS:
            gzip_q = _q_value(params)
        elif coding == "*":
            any_q = _q_value(params)
    chosen = gzip_q if gzip_q is not None else any_q
    return chosen is not None and chosen > 0


def _q_value(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0  # a malformed weight: treat the coding as not acceptable
    return 1.0


def matches(if_none_match: str | None, etag: str) -> bool:
    """``If-None-Match`` holds ``etag`` (weak comparison, as RFC 9110 asks for it) or ``*``."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        if tag.removeprefix("W/") == etag:
            return True
    return False


def answer_response(answer: Answer, request_headers: Mapping[str, str]) -> Response:
    """The response to a request with ``request_headers`` for the stored ``answer``."""
    gzipped = len(answer.body) >= GZIP_MIN_BYTES and accepts_gzip(
        request_headers.get("accept-encoding")
    )
    etag = answer.etag[:-1] + GZIP_TAG_SUFFIX if gzipped else answer.etag
    headers = {"ETag": etag, "Vary": "Accept-Encoding", "Cache-Control": "no-cache"}
    if matches(request_headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
        return Response(answer.gzipped, media_type=MEDIA_TYPE, headers=headers)
    return Response(answer.body, media_type=MEDIA_TYPE, headers=headers)
