"""Compression and validators of KPI answers (api/representation.py), over ``apifixtures``.

The reference is the plain ``ModelReader``'s answer encoded with orjson, as in
test_answer_cache.py: a gzip answer must decompress to exactly those bytes, an ``If-None-Match``
with the current tag must give ``304`` and any other tag the answer. The clock is frozen at
10:10:30 on the scenario's day.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson
import pytest

from api.representation import GZIP_MIN_BYTES, accepts_gzip, matches
from api.services import Services
from api.views import ModelReader
from stream.kpi.windows import live_end_us
from stream.processor import MessageProcessor
from tests.unit.apifixtures import (
    CENTRE,
    T0_US,
    ChangelogStore,
    TestClient,
    client_for,
    feed,
    hms,
    iso,
    processed_scenario,
    s,
    services_fed,
    validated,
)

NOW_US = hms("10:10:30")
PROCESSED_US = T0_US + s(3600)
IDENTITY = {"Accept-Encoding": "identity"}
GZIP = {"Accept-Encoding": "gzip"}


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("api.clock.now_us", lambda: NOW_US)


@pytest.fixture
def store() -> ChangelogStore:
    return processed_scenario()


@pytest.fixture
def services(store: ChangelogStore) -> Services:
    return services_fed(store)


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with client_for(services) as client:
        yield client


def reference(services: Services) -> bytes:
    """``GET /v1/kpis?window=15m`` as the plain reader computes it now."""
    reader = ModelReader(services.model, services.centre)
    return orjson.dumps(reader.centre_kpis("15m", live_end_us(NOW_US)))


def raw_get(client: TestClient, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and the body bytes as sent (the test client would decode gzip)."""
    with client.stream("GET", "/v1/kpis", params={"window": "15m"}, headers=headers) as response:
        return response.status_code, dict(response.headers), b"".join(response.iter_raw())


def test_gzip_answer_decompresses_to_exactly_the_identity_answer(
    client: TestClient, services: Services
) -> None:
    status, headers, plain = raw_get(client, IDENTITY)
    assert (status, plain) == (200, reference(services))
    assert "content-encoding" not in headers
    status, headers, packed = raw_get(client, GZIP)
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(packed) < len(plain)
    assert gzip.decompress(packed) == plain
    # Compressed once: the second gzip request is the stored bytes, not another build.
    assert raw_get(client, GZIP)[2] == packed
    assert services.answers.builds == 1


def test_every_answer_varies_on_accept_encoding_and_asks_for_revalidation(
    client: TestClient,
) -> None:
    for headers in (IDENTITY, GZIP):
        _, answer_headers, _ = raw_get(client, headers)
        assert answer_headers["vary"] == "Accept-Encoding"
        assert answer_headers["cache-control"] == "no-cache"


def test_if_none_match_with_the_current_tag_gives_304_and_a_stale_one_the_answer(
    client: TestClient, services: Services, store: ChangelogStore
) -> None:
    _, headers, body = raw_get(client, IDENTITY)
    etag = headers["etag"]
    status, not_modified, empty = raw_get(client, {**IDENTITY, "If-None-Match": etag})
    assert (status, empty, not_modified["etag"]) == (304, b"", etag)
    assert not_modified["vary"] == "Accept-Encoding"
    # A weak form of the tag, or the tag among others, matches too (RFC 9110 weak comparison).
    assert raw_get(client, {**IDENTITY, "If-None-Match": f'"x", W/{etag}'})[0] == 304
    assert raw_get(client, {**IDENTITY, "If-None-Match": "*"})[0] == 304
    stale = raw_get(client, {**IDENTITY, "If-None-Match": '"0123456789abcdef01234567"'})
    assert (stale[0], stale[2]) == (200, body)
    # New figures: the old tag no longer matches and the answer carries a new one.
    process_more(services, store)
    status, changed, new_body = raw_get(client, {**IDENTITY, "If-None-Match": etag})
    assert status == 200
    assert changed["etag"] != etag
    assert new_body == reference(services) != body


def test_the_gzip_form_has_its_own_tag(client: TestClient) -> None:
    _, plain, _ = raw_get(client, IDENTITY)
    _, packed, _ = raw_get(client, GZIP)
    assert packed["etag"] != plain["etag"]
    assert raw_get(client, {**GZIP, "If-None-Match": packed["etag"]})[0] == 304
    # A tag of the other encoding names another representation: the answer, not 304.
    assert raw_get(client, {**GZIP, "If-None-Match": plain["etag"]})[0] == 200
    assert raw_get(client, {**IDENTITY, "If-None-Match": packed["etag"]})[0] == 200


def test_the_tag_follows_the_figures_not_the_clock(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Figures that did not change keep their tag in the next second; changed ones do not."""
    # A past window: the same figures in both seconds.
    past = {"window": "5m", "at": iso(hms("10:05:00"))}
    tags = []
    for now_us in (NOW_US, NOW_US + s(1)):
        monkeypatch.setattr("api.clock.now_us", lambda now_us=now_us: now_us)
        tags.append(client.get("/v1/kpis", params=past, headers=IDENTITY).headers["etag"])
    assert tags[0] == tags[1]
    live = []
    for now_us in (NOW_US, NOW_US + s(1)):
        monkeypatch.setattr("api.clock.now_us", lambda now_us=now_us: now_us)
        live.append(client.get("/v1/kpis", params={"window": "15m"}, headers=IDENTITY))
    # c4 is still waiting: its longest wait grows by a second, so the live answer changes.
    waits = [answer.json()["total"]["longest_wait_s"] for answer in live]
    assert waits[0] + 1 == waits[1]
    assert live[0].headers["etag"] != live[1].headers["etag"]


def test_a_small_answer_goes_uncompressed(client: TestClient) -> None:
    response = client.get("/v1/queues/support/kpis", headers=GZIP)
    assert response.status_code == 200
    if len(response.content) < GZIP_MIN_BYTES:
        assert "content-encoding" not in response.headers
    else:  # the object grew: then it must be compressed, and still decode to the same figures
        assert response.headers["content-encoding"] == "gzip"


@pytest.mark.parametrize(
    ("accept_encoding", "gzip_ok"),
    [
        ("gzip", True),
        ("gzip, deflate, br, zstd", True),  # what browsers send
        ("GZIP", True),  # codings are case-insensitive
        ("x-gzip", True),  # the old alias
        ("br;q=1.0, gzip;q=0.8", True),  # any weight above 0 is acceptable
        ("*", True),  # anything goes
        ("gzip;q=0", False),  # explicitly refused
        ("gzip;q=0.000", False),
        ("gzip;q=0, *", False),  # the named coding wins over the wildcard
        ("*;q=0", False),
        ("deflate, br", False),  # not offered
        ("identity", False),
        ("gzip;q=high", False),  # a malformed weight: not acceptable
        ("", False),
        (None, False),  # no header: identity
    ],
)
def test_accepts_gzip(accept_encoding: str | None, gzip_ok: bool) -> None:
    assert accepts_gzip(accept_encoding) is gzip_ok


@pytest.mark.parametrize(
    ("if_none_match", "matched"),
    [
        ('"abc"', True),
        ('W/"abc"', True),  # weak comparison
        ('"x", "abc"', True),  # one of a list
        ("*", True),
        ('"abd"', False),
        ('"abc-gzip"', False),  # the other encoding's tag
        ("abc", False),  # not quoted: not the same entity tag
        ("", False),
        (None, False),
    ],
)
def test_if_none_match_comparison(if_none_match: str | None, matched: bool) -> None:
    assert matches(if_none_match, '"abc"') is matched


def test_the_event_stream_is_never_compressed(client: TestClient) -> None:
    """SSE goes through the stream route, not api/representation.py: a wallboard asking gzip
    still gets plain ``text/event-stream`` events, each flushed as it is made."""
    start, first_event = asyncio.run(_first_stream_messages(client, GZIP))
    headers = {name.decode(): value.decode() for name, value in start["headers"]}
    assert start["status"] == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in headers
    assert first_event.startswith(b"event: kpis\ndata: {")


async def _first_stream_messages(
    client: TestClient, headers: dict[str, str]
) -> tuple[MutableMapping[str, Any], bytes]:
    """Drive the ASGI app directly until the first ``kpis`` event, then disconnect."""
    messages: list[MutableMapping[str, Any]] = []
    snapshot = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await snapshot.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        messages.append(message)
        if b"event: kpis" in message.get("body", b""):
            snapshot.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/stream",
        "raw_path": b"/v1/stream",
        "query_string": b"window=15m",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "app": client.app,
    }
    await asyncio.wait_for(client.app(scope, receive, send), timeout=10)
    start = next(m for m in messages if m["type"] == "http.response.start")
    event = next(m["body"] for m in messages if b"event: kpis" in m.get("body", b""))
    return start, event


def process_more(services: Services, store: ChangelogStore) -> None:
    """One more call offered in ``sales``; its changelog records reach the read model."""
    written = len(store.log)
    offer = {"event_id": "x-c9", "type": "call.offered", "ts": iso(hms("10:10:10")),
             "queue": "sales", "call_id": "c9"}  # fmt: skip
    MessageProcessor(CENTRE).process(
        store, validated([offer], PROCESSED_US), offset=1000, partition=0, now_us=PROCESSED_US
    )
    feed(services.model, store.log[written:])
