"""The naive baseline: a Faust agent that updates a windowed table once per event.

What the Faust documentation suggests for windowed counts: a tumbling 60 s window per queue,
``table[queue] += 1`` for every event, one changelog write each. It reads the same pre-filled
topic as callpulse's worker (a message may hold one event or a JSON array of them), so the two
rates are a ratio measured on the same machine, broker and data.

Run as its own process: ``python -m bench.naive_faust`` with ``NAIVE_BOOTSTRAP``,
``NAIVE_TOPIC``, ``NAIVE_APP_ID`` and ``NAIVE_PARTITIONS`` set.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

import faust
import orjson

TABLE = "counts"


def create_app(bootstrap: str, topic_name: str, app_id: str, partitions: int) -> faust.App:
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        topic_partitions=partitions,
        broker_session_timeout=4.0,
        broker_heartbeat_interval=1.0,
        producer_acks=1,  # the embedded broker needs it, as for callpulse's worker
        consumer_auto_offset_reset="earliest",
        key_serializer="json",
        value_serializer="json",
        web_enabled=False,
    )
    source = app.topic(topic_name, key_serializer="raw", value_serializer="raw")
    counts = app.Table(TABLE, default=int, partitions=partitions).tumbling(
        60, expires=timedelta(hours=1)
    )

    @app.agent(source, name="count")
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            decoded = orjson.loads(value)
            for event in decoded if isinstance(decoded, list) else [decoded]:
                counts[event.get("queue") or "-"] += 1

    return app


def changelog_topic(app_id: str) -> str:
    return f"{app_id}-{TABLE}-changelog"


def count_of(key: bytes, value: bytes | None) -> int:
    """Every changelog record of the table is one window's count."""
    return 0 if value is None else int(orjson.loads(value))


def main() -> None:
    from faust.worker import Worker

    app = create_app(
        os.environ["NAIVE_BOOTSTRAP"],
        os.environ["NAIVE_TOPIC"],
        os.environ["NAIVE_APP_ID"],
        int(os.environ["NAIVE_PARTITIONS"]),
    )
    sys.argv = [sys.argv[0]]
    Worker(app, loglevel="info").execute_from_commandline()


if __name__ == "__main__":
    main()
