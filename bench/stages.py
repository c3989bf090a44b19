"""Where a probe's latency goes, read from Kafka record timestamps after a latency run.

Every hop leaves a timestamped record: the probe itself in the events topic (the producer's
time), the routed message that carries it (stage one's forward), the queue's totals record
that counts it (stage two's changelog write). With the moment the API showed it, the latency
splits into stage one, stage two and the read side.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from bench import kafkaio
from bench.report import percentile
from stream import records

Extract = Callable[[ConsumerRecord[bytes, bytes]], int | None]


async def scan(
    bootstrap: str, topic: str, extract: Extract, timeout_s: float = 60.0
) -> list[tuple[int, int]]:
    """(timestamp_ms, extract(record)) of every record where ``extract`` is not None."""
    ends = {tp: end for tp, end in (await kafkaio.end_offsets(bootstrap, [topic])).items() if end}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    found: list[tuple[int, int]] = []
    try:
        consumer.assign(list(ends))
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000, max_records=20000)
            if not batches and all([await consumer.position(tp) >= e for tp, e in ends.items()]):
                break
            for messages in batches.values():
                for message in messages:
                    value = extract(message)
                    if value is not None:
                        found.append((message.timestamp, value))
    finally:
        await consumer.stop()
    return sorted(found)


def expand(counted: list[tuple[int, int]], cumulative: bool) -> list[int]:
    """One timestamp per probe, in probe order.

    ``cumulative``: each record holds the running count (totals); else how many it carries.
    """
    times: list[int] = []
    for timestamp, count in counted:
        more = count - len(times) if cumulative else count
        times.extend([timestamp] * max(more, 0))
    return times


@dataclass(frozen=True, slots=True)
class StageSplit:
    stage_one_ms: list[float]
    stage_two_ms: list[float]
    # Changelog record written -> the API answered with it: the changelog's acknowledgement,
    # the API's fetch and apply, its event loop's other work and the poll period.
    read_side_ms: list[float] = field(default_factory=list)

    def describe(self) -> str:
        if not self.stage_one_ms or not self.stage_two_ms:
            return "stages: not measured"
        parts = [
            _part("stage 1 (events -> routed)", self.stage_one_ms),
            _part("stage 2 (routed -> changelog)", self.stage_two_ms),
        ]
        if self.read_side_ms:
            parts.append(_part("read side (changelog -> API answer)", self.read_side_ms))
        return ", ".join(parts)


def _part(name: str, values: list[float]) -> str:
    return f"{name} p50 {percentile(values, 50):,.0f} / p99 {percentile(values, 99):,.0f} ms"


def split(
    bootstrap: str, env: dict[str, str], queue: str, visible_wall_ms: Sequence[float] = ()
) -> StageSplit:
    """``visible_wall_ms``: when the API first showed each probe, on the wall clock."""
    marker = queue.encode()
    call_marker = marker + b"-c"
    totals_key = orjson.dumps(records.key(records.TOTALS, records.queue_routing_key(queue)))

    def produced(message: ConsumerRecord[bytes, bytes]) -> int | None:
        return (message.value or b"").count(call_marker) or None

    def counted(message: ConsumerRecord[bytes, bytes]) -> int | None:
        if message.key != totals_key or message.value is None:
            return None
        return int(orjson.loads(message.value)["events"].get("call.offered", 0))

    app_id = env["CALLPULSE_APP_ID"]
    sent = expand(asyncio.run(scan(bootstrap, env["CALLPULSE_EVENTS_TOPIC"], produced)), False)
    routed = expand(asyncio.run(scan(bootstrap, f"{app_id}-routed-events", produced)), False)
    written = expand(asyncio.run(scan(bootstrap, f"{app_id}-state-changelog", counted)), True)
    return StageSplit(
        [float(r - s) for s, r in zip(sent, routed, strict=False)],
        [float(w - r) for r, w in zip(routed, written, strict=False)],
        [v - w for w, v in zip(written, visible_wall_ms, strict=False)],
    )
