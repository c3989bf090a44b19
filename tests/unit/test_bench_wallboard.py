"""The bench's open-loop wallboard client (bench/wallboard.py) against a tiny in-process server.

Not a timed test: it checks what the client sends and counts (gzip asked, the last ETag sent
back, 304s and body bytes counted), so the bench's wallboard row cannot quietly measure
something else. The server answers 200 with an ETag first, then 304 to a matching tag.
"""

from __future__ import annotations

import asyncio

from bench.wallboard import Poller, WallboardLoad, in_own_process, summarise

ETAG = '"v1"'
BODY = b'{"queues": []}'


async def _serve(requests: list[bytes]) -> asyncio.Server:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                requests.append(head)
                if f"if-none-match: {ETAG}".encode() in head.lower():
                    writer.write(f"HTTP/1.1 304 Not Modified\r\nETag: {ETAG}\r\n\r\n".encode())
                else:
                    writer.write(
                        f"HTTP/1.1 200 OK\r\nETag: {ETAG}\r\nContent-Length: {len(BODY)}\r\n"
                        "\r\n".encode()
                        + BODY
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


async def _run(clients: int, seconds: float) -> tuple[list[bytes], WallboardLoad]:
    requests: list[bytes] = []
    server = await _serve(requests)
    port = server.sockets[0].getsockname()[1]
    async with server:
        # As the bench runs it: in a process of its own, the summary back as JSON.
        load = await asyncio.to_thread(
            in_own_process,
            f"http://127.0.0.1:{port}",
            "/v1/kpis?window=15m",
            "t0ken",
            clients,
            seconds,
        )
    return requests, load


def test_each_wallboard_asks_gzip_and_revalidates_with_the_last_etag() -> None:
    requests, load = asyncio.run(_run(clients=3, seconds=2.0))
    assert len(requests) == 6  # 3 clients x 2 due times
    assert all(b"Accept-Encoding: gzip" in r for r in requests)
    assert all(b"Authorization: Bearer t0ken" in r for r in requests)
    revalidations = [r for r in requests if b"If-None-Match" in r]
    assert len(revalidations) == 3  # each client's second request carries the tag it got
    assert (load.requests, load.not_modified, load.errors) == (6, 3, 0)
    assert load.mean_body_bytes == len(BODY) / 2  # a body for the 200s, none for the 304s


def test_summarise_counts_304s_bytes_and_errors() -> None:
    pollers = [
        Poller([5.0, 7.0], {200: 1, 304: 1}, 100),
        Poller([9.0], {503: 1}, 10),
        Poller([], {}, 0, "ConnectionRefusedError: no"),
    ]
    load = summarise(pollers, 2.0)
    assert (load.requests, load.per_s, load.not_modified) == (3, 1.5, 1)
    assert load.mean_body_bytes == 110 / 3
    assert load.errors == 2  # one 503, one client that never connected
    assert (load.p50_ms, load.p99_ms) == (7.0, 8.96)
