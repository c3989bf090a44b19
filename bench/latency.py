"""Scenario 2: produce-to-API latency at a steady event rate.

Background traffic flows at ``latency_rate`` events/s. Every ``1/probes_per_s`` s one of those
events is a probe: a ``call.offered`` in a queue of its own. A poller asks the API for that
queue's ``offered`` as fast as it answers; probe k is visible at the first answer with
``offered >= k`` (the probe queue lives on one partition, so probes arrive in order). Latency =
visible - the moment the probe was handed to the producer. The poll period (a few ms) is the
resolution.

The read side (changelog record written -> the API's answer counts it) is the changelog's
acknowledgement, the API's fetch and apply, whatever else holds the API's event loop, and the
poll. The API's answer cache adds nothing to it: a cached answer is keyed by the read-model
version as well as the second (``api.answers``), and every applied record is a new version.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from bench import stages
from bench.events import Event, Traffic, event_chunks, producer_key, rfc3339
from bench.infra import AUTH_HEADERS, Processes, callpulse_env, start_api, start_worker
from bench.options import Options
from bench.report import Result, percentile
from stream.kpi.timeutil import US_PER_S

TARGET_P99_MS = 250.0
TICK_S = 0.01
WARMUP_S = 3.0
SETTLE_S = 30.0


@dataclass
class Probes:
    queue: str
    sent_at: list[float] = field(default_factory=list)
    visible_at: list[float] = field(default_factory=list)
    # The same moments on the wall clock, to set beside Kafka record timestamps (bench.stages).
    visible_wall_ms: list[float] = field(default_factory=list)
    polls: int = 0
    poll_s: float = 0.0  # time spent waiting for answers, for the mean poll round trip

    def latencies_ms(self) -> list[float]:
        return [(v - s) * 1000 for s, v in zip(self.sent_at, self.visible_at, strict=False)]


def latency(options: Options) -> list[Result]:
    """At the target rate in both message forms; and at a low rate, the pipeline's own delay."""
    results = []
    for rate, per_message, label in (
        (options.latency_rate, 1, "1 event/message"),
        (options.latency_rate, 0, "10 ms micro-batches"),
        (options.latency_low_rate, 1, "1 event/message"),
    ):
        name = f"latency-{rate:.0f}-{per_message or 'batched'}"
        probes, achieved, split = _run(replace(options, latency_rate=rate), name, per_message)
        results.extend(
            _results(rate, label, probes, achieved, split, targeted=rate == options.latency_rate)
        )
    return results


def _run(options: Options, name: str, per_message: int) -> tuple[Probes, float, str]:
    with Processes(options.out_dir / "logs", name) as processes:
        bootstrap = processes.start_broker()
        env = callpulse_env(bootstrap, name, options.partitions)
        start_worker(processes, env)
        url = start_api(processes, env)
        topic = env["CALLPULSE_EVENTS_TOPIC"]
        probes, rate = asyncio.run(_measure(options, bootstrap, topic, url, per_message))
        processes.stop("api")
        processes.stop("worker")  # before reading the topics back: the two cores are the bench's
        split = stages.split(bootstrap, env, probes.queue, probes.visible_wall_ms)
        mean_poll_ms = probes.poll_s / max(probes.polls, 1) * 1000
        return probes, rate, f"{split.describe()}; a poll took {mean_poll_ms:.1f} ms on average"


async def _measure(
    options: Options, bootstrap: str, topic: str, url: str, per_message: int
) -> tuple[Probes, float]:
    probes = Probes(queue=f"probe-{int(time.time())}")
    done = asyncio.Event()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    await producer.start()
    try:
        async with httpx.AsyncClient(base_url=url, headers=AUTH_HEADERS, timeout=10) as client:
            poller = asyncio.create_task(_poll(client, probes, done))
            rate = await _produce(options, producer, topic, probes, per_message)
            deadline = time.monotonic() + SETTLE_S
            while len(probes.visible_at) < len(probes.sent_at) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            done.set()
            await poller
    finally:
        await producer.stop()
    return probes, rate


async def _poll(client: httpx.AsyncClient, probes: Probes, done: asyncio.Event) -> None:
    path = f"/v1/queues/{probes.queue}/kpis"
    while not done.is_set():
        asked = time.monotonic()
        reply = await client.get(path, params={"window": "1h"})
        now, wall_ms = time.monotonic(), time.time() * 1000
        probes.polls += 1
        probes.poll_s += now - asked
        if reply.status_code == 200:
            offered = int(reply.json()["offered"])
            while len(probes.visible_at) < min(offered, len(probes.sent_at)):
                probes.visible_at.append(now)
                probes.visible_wall_ms.append(wall_ms)
        await asyncio.sleep(0.002)


async def _produce(
    options: Options, producer: AIOKafkaProducer, topic: str, probes: Probes, per_message: int
) -> float:
    """Sends at the rate, probes included; returns the rate achieved (events/s)."""
    total_s = WARMUP_S + options.latency_s
    # Generated up front: generating while sending would stall the loop and the clock.
    events = iter(list(_background(int(options.latency_rate * total_s) + 1, options.queues)))
    every_probe_s = 1.0 / options.probes_per_s
    started = time.monotonic()
    next_probe = started + WARMUP_S
    sent = 0
    while (elapsed := time.monotonic() - started) < total_s:
        due = int(elapsed * options.latency_rate) - sent
        now_text = rfc3339(int(time.time() * US_PER_S))
        batch = [next(events) for _ in range(max(due, 0))]
        for event in batch:
            event["ts"] = now_text
        if time.monotonic() >= next_probe and batch:
            batch[-1] = _probe(probes, now_text)
            next_probe += every_probe_s
        await _send(producer, topic, batch, per_message, probes)
        sent += len(batch)
        await asyncio.sleep(TICK_S)
    return sent / (time.monotonic() - started)


def _probe(probes: Probes, ts: str) -> Event:
    number = len(probes.sent_at) + 1
    return {
        "event_id": f"{probes.queue}-{number}",
        "type": "call.offered",
        "ts": ts,
        "queue": probes.queue,
        "call_id": f"{probes.queue}-c{number}",
    }


async def _send(
    producer: AIOKafkaProducer, topic: str, batch: list[Event], per_message: int, probes: Probes
) -> None:
    if not batch:
        return
    probe_sent = time.monotonic()
    if per_message == 1:
        for event in batch:
            await producer.send(topic, orjson.dumps(event), key=producer_key(event))
    else:
        await producer.send(topic, orjson.dumps(batch))
    if batch[-1].get("queue") == probes.queue:
        probes.sent_at.append(probe_sent)


def _background(count: int, queues: int) -> Iterator[Event]:
    """Traffic shaped like scenario 1's (times are overwritten with the moment of sending)."""
    now_us = int(time.time()) * US_PER_S
    spec = Traffic(count, now_us - 3600 * US_PER_S, now_us, queues=queues, id_prefix="l-")
    for chunk in event_chunks(spec):
        yield from chunk


def _results(
    target_rate: float, label: str, probes: Probes, rate: float, stage_text: str, *, targeted: bool
) -> list[Result]:
    latencies = probes.latencies_ms()
    missing = len(probes.sent_at) - len(latencies)
    note = (
        f"{len(latencies)} probes at {rate:,.0f} events/s produced, {probes.polls:,} polls, "
        f"max {max(latencies, default=0):,.0f} ms; {stage_text}"
    )
    if missing:
        note += f"; {missing} probes NOT visible within {SETTLE_S:.0f} s (worker behind)"
    p50 = percentile(latencies, 50) if latencies and not missing else None
    p99 = percentile(latencies, 99) if latencies and not missing else None
    at = f"{target_rate:,.0f}/s"
    return [
        Result(f"2. latency p50 at {at}, {label}", p50, "ms", higher_is_better=False, note=note),
        Result(
            f"2. latency p99 at {at}, {label}",
            p99,
            "ms",
            target=TARGET_P99_MS if targeted else None,
            higher_is_better=False,
        ),
    ]
