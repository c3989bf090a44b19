"""The simulator's Kafka loop: the backfill as fast as possible, then in step with the wall clock.

Simulated time never runs ahead of the wall clock: the service rejects events from the future.
Each message is a JSON array of events for one key (the queue, else the agent), as CONTRACT.md's
micro-batching allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from callpulse.kafka import client_kwargs, producer_acks
from callpulse.settings import Settings
from callpulse.simulator.model import Event, Simulation
from callpulse.simulator.profiles import CentreProfile
from stream.kpi.timeutil import US_PER_S

TICK_S = 0.5
BACKFILL_STEP_S = 300.0  # simulated seconds per backfill round: bounds memory and unacked sends
KEY_FIELDS = ("queue", "agent_id", "customer_id")
LINGER_MS = 5


def producer_options(settings: Settings) -> dict[str, Any]:
    """Connection and security (TLS, SASL) as every client has them, the configured acks, and
    the simulator's batching: what ``run_simulator``'s producer is built from."""
    return {**client_kwargs(settings), "acks": producer_acks(settings), "linger_ms": LINGER_MS}


async def run_simulator(
    *,
    kafka: Mapping[str, Any],
    topic: str,
    centre: CentreProfile,
    seed: int,
    speed: float = 1.0,
    backfill_s: float = 0.0,
    duration_s: float | None = None,
    stop: asyncio.Event | None = None,
    batch_max: int = 500,
    clock: Callable[[], float] = time.time,
    on_live_tick: Callable[[Simulation, float], None] | None = None,
) -> int:
    """Produce simulated traffic into ``topic``; returns the number of events produced.

    ``kafka`` is the producer's options: ``producer_options(settings)``.

    Simulated time starts at ``clock() - backfill_s``. After the backfill it moves at ``speed``
    simulated seconds per wall second, capped at the wall clock (so a speed above 1 only makes up
    a lag). ``duration_s`` counts wall seconds from the call, backfill included. Once live,
    ``on_live_tick(simulation, live_s)`` runs before each step (e.g. to understaff a queue on
    purpose, ``understaff.UnderstaffPlan``). Stops when
    ``stop`` is set, at the deadline or on cancellation; the Kafka producer is always stopped.
    """
    if speed <= 0 or batch_max < 1:
        raise ValueError("speed must be positive and batch_max at least 1")
    started_s = clock()
    deadline_s = None if duration_s is None else started_s + duration_s
    simulation = Simulation(centre, start_us=_us(started_s - backfill_s), seed=seed)
    sender = _BatchSender(
        AIOKafkaProducer(**kafka),
        topic,
        batch_max,
    )
    stop = stop or asyncio.Event()

    def finished() -> bool:
        return stop.is_set() or (deadline_s is not None and clock() >= deadline_s)

    await sender.producer.start()
    try:
        await _backfill(simulation, sender, clock, finished)
        await _follow_wall_clock(
            simulation, sender, clock, speed, finished, stop, deadline_s, on_live_tick
        )
    finally:
        await sender.producer.stop()
    return sender.produced


async def _backfill(
    simulation: Simulation,
    sender: _BatchSender,
    clock: Callable[[], float],
    finished: Callable[[], bool],
) -> None:
    """Catch up with the wall clock (which moves on meanwhile) as fast as the broker takes it."""
    while not finished():
        now_us = _us(clock())
        if simulation.now_us >= now_us - _us(TICK_S):
            return
        until_us = min(simulation.now_us + _us(BACKFILL_STEP_S), now_us)
        await sender.send(simulation.advance(until_us))


async def _follow_wall_clock(
    simulation: Simulation,
    sender: _BatchSender,
    clock: Callable[[], float],
    speed: float,
    finished: Callable[[], bool],
    stop: asyncio.Event,
    deadline_s: float | None,
    on_live_tick: Callable[[Simulation, float], None] | None = None,
) -> None:
    anchor_sim_us, anchor_wall_s = simulation.now_us, clock()
    while True:
        wall_s = clock()
        if on_live_tick is not None:
            on_live_tick(simulation, wall_s - anchor_wall_s)
        target_us = anchor_sim_us + _us((wall_s - anchor_wall_s) * speed)
        await sender.send(simulation.advance(min(target_us, _us(wall_s))))
        if finished():
            return
        pause_s = TICK_S if deadline_s is None else min(TICK_S, max(0.0, deadline_s - clock()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause_s)


class _BatchSender:
    """Sends events as per-key JSON arrays and counts the events the broker acknowledged."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, batch_max: int) -> None:
        self.producer = producer
        self.topic = topic
        self.batch_max = batch_max
        self.produced = 0

    async def send(self, events: Sequence[Event]) -> None:
        deliveries = []
        for key, batch in message_batches(events, self.batch_max):
            value = orjson.dumps(batch)
            deliveries.append(await self.producer.send(self.topic, value=value, key=key))
        await asyncio.gather(*deliveries)
        self.produced += len(events)


def message_batches(events: Sequence[Event], batch_max: int) -> Iterator[tuple[bytes, list[Event]]]:
    """(key, events) per message: grouped by key in time order, at most ``batch_max`` each."""
    by_key: dict[str, list[Event]] = {}
    for event in events:
        by_key.setdefault(partition_key(event), []).append(event)
    for key, keyed in by_key.items():
        for start in range(0, len(keyed), batch_max):
            yield key.encode(), keyed[start : start + batch_max]


def partition_key(event: Event) -> str:
    """The queue keeps a queue's calls on one partition; agent and customer events have none."""
    for name in KEY_FIELDS:
        value = event.get(name)
        if isinstance(value, str):
            return value
    return str(event["type"])


def _us(seconds: float) -> int:
    return round(seconds * US_PER_S)
