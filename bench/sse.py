"""Many Server-Sent Events subscribers on raw sockets, counting the ``kpis`` events they get.

Raw asyncio streams rather than an HTTP client: a thousand subscribers must cost the bench far
less CPU than they cost the API, or the bench would measure itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.report import percentile

EVENT_MARK = b"event: kpis"
CONNECT_BATCH = 100
RECENT_S = 5.0  # "still receiving": an update within this long before the end


@dataclass
class Subscriber:
    connected: bool = False
    updates: int = 0
    last_update: float = 0.0
    error: str = ""
    _tail: bytes = field(default=b"", repr=False)

    def feed(self, data: bytes, now: float) -> None:
        """Counts event marks, also one split across two reads."""
        joined = self._tail + data
        found = joined.count(EVENT_MARK)
        if found:
            self.updates += found
            self.last_update = now
        self._tail = joined[-(len(EVENT_MARK) - 1) :]


async def _subscribe(
    host: str, port: int, path: str, token: str, sub: Subscriber, stop: asyncio.Event
) -> None:
    writer = None
    try:
        reader, writer = await asyncio.open_connection(host, port)
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        )
        writer.write(request.encode())
        status = await reader.readline()  # the holder cancels it if the server never answers
        if b" 200 " not in status:
            sub.error = status.decode(errors="replace").strip()
            return
        sub.connected = True
        while not stop.is_set():
            try:
                data = await asyncio.wait_for(reader.read(65536), timeout=1.0)
            except TimeoutError:
                continue
            if not data:
                sub.error = "closed by the server"
                break
            sub.feed(data, time.monotonic())
    except OSError as exc:
        sub.error = str(exc)
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def hold_subscribers(url: str, token: str, count: int, seconds: float) -> dict[str, float]:
    """Opens ``count`` subscriptions (in batches), holds them ``seconds``, and reports."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    stop = asyncio.Event()
    subscribers = [Subscriber() for _ in range(count)]
    tasks = []
    for start in range(0, count, CONNECT_BATCH):
        for sub in subscribers[start : start + CONNECT_BATCH]:
            path = "/v1/stream?window=15m"
            tasks.append(asyncio.create_task(_subscribe(host, port, path, token, sub, stop)))
        await asyncio.sleep(0.2)
    started = time.monotonic()
    await asyncio.sleep(seconds)
    ended = time.monotonic()
    stop.set()
    # A subscriber still waiting for its response (or a read) is not held: cancel what is left.
    _, pending = await asyncio.wait(tasks, timeout=2.0)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return summarise(subscribers, ended, ended - started)


def summarise(subscribers: list[Subscriber], ended: float, held_s: float) -> dict[str, float]:
    updates = [float(s.updates) for s in subscribers if s.connected] or [0.0]
    return {
        "connected": float(sum(s.connected for s in subscribers)),
        "held": float(
            sum(
                s.connected and not s.error and s.last_update >= ended - RECENT_S
                for s in subscribers
            )
        ),
        "held_s": held_s,
        "updates_p50": percentile(updates, 50),
        "updates_min": min(updates),
    }
