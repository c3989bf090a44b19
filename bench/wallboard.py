"""An open-loop wallboard load: many clients, each asking ``GET /v1/kpis`` once a second.

Unlike wrk's closed loop (each connection asks again the moment its answer arrives), a
wallboard polls on a timer whatever the server does, so a slow answer does not slow the load:
latency counts from when the request was due, not from when it was sent (no coordinated
omission). Each client holds one keep-alive connection on raw asyncio streams and behaves as a
browser does: ``Accept-Encoding: gzip`` and ``If-None-Match`` with the last ``ETag`` it saw.
Raw sockets rather than an HTTP client: the load must cost far less CPU than it costs the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.report import percentile

CONNECT_BATCH = 50


@dataclass
class Poller:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    body_bytes: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class WallboardLoad:
    p50_ms: float | None
    p99_ms: float | None
    requests: int
    per_s: float
    not_modified: int
    mean_body_bytes: float
    errors: int


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return status, headers, body


async def _poll(
    host: str, port: int, path: str, token: str, poller: Poller, start: float, end: float
) -> None:
    """Due times at ``start``, ``start + 1`` ...; one request each, on one connection."""
    writer = None
    try:
        reader, writer = await asyncio.open_connection(host, port)
        etag = ""
        due = start
        while due < end:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            validator = f"If-None-Match: {etag}\r\n" if etag else ""
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept-Encoding: gzip\r\n"
                f"Authorization: Bearer {token}\r\n{validator}\r\n"
            )
            writer.write(request.encode())
            status, headers, body = await _read_response(reader)
            poller.latencies_ms.append((time.monotonic() - due) * 1000)
            poller.statuses[status] = poller.statuses.get(status, 0) + 1
            poller.body_bytes += len(body)
            etag = headers.get("etag", etag)
            due += 1.0
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        poller.error = f"{type(exc).__name__}: {exc}"
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def poll_like_wallboards(
    url: str, path: str, token: str, clients: int, seconds: float, seed: int = 8
) -> WallboardLoad:
    """``clients`` pollers, each once a second for ``seconds``, phases spread over the second."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    phases = random.Random(seed)
    pollers = [Poller() for _ in range(clients)]
    begin = time.monotonic() + 1.0  # connections are opened within this second
    end = begin + seconds
    tasks = []
    for index, poller in enumerate(pollers):
        start = begin + phases.random()
        tasks.append(asyncio.create_task(_poll(host, port, path, token, poller, start, end)))
        if index % CONNECT_BATCH == CONNECT_BATCH - 1:
            await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    return summarise(pollers, seconds)


def summarise(pollers: list[Poller], seconds: float) -> WallboardLoad:
    latencies = [ms for poller in pollers for ms in poller.latencies_ms]
    statuses: dict[int, int] = {}
    for poller in pollers:
        for status, count in poller.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    requests = len(latencies)
    return WallboardLoad(
        percentile(latencies, 50) if latencies else None,
        percentile(latencies, 99) if latencies else None,
        requests,
        requests / seconds,
        statuses.get(304, 0),
        sum(poller.body_bytes for poller in pollers) / max(requests, 1),
        sum(1 for poller in pollers if poller.error)
        + sum(count for status, count in statuses.items() if status not in (200, 304)),
    )


def main(argv: list[str]) -> None:
    """``python -m bench.wallboard URL PATH TOKEN CLIENTS SECONDS``: the load in a process of
    its own (the bench's loop also builds and publishes updates), its summary as JSON."""
    url, path, token, clients, seconds = argv
    load = asyncio.run(poll_like_wallboards(url, path, token, int(clients), float(seconds)))
    sys.stdout.write(json.dumps(dataclasses.asdict(load)) + "\n")


def in_own_process(url: str, path: str, token: str, clients: int, seconds: float) -> WallboardLoad:
    argv = [sys.executable, "-m", "bench.wallboard", url, path, token, str(clients), str(seconds)]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return WallboardLoad(**json.loads(output))


if __name__ == "__main__":
    main(sys.argv[1:])
