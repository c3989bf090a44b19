"""Synthetic contact-centre traffic for the benchmark, and how producers pack it into messages.

Not a realistic simulation (``callpulse.simulator`` is that): a fast, seeded stream with the event
mix that exercises the whole KPI logic (call state, waits, handle time, agents, surveys), spread
evenly over a time span so every queue has a bucket in every minute. Generated in time-sorted
chunks, so ten million events never sit in memory at once.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from stream.kpi.timeutil import US_PER_S, us_to_rfc3339

Event = dict[str, Any]
Message = tuple[bytes | None, list[Event]]

# Average events per call of the mix below (see _call_events): used to size the arrival step.
EVENTS_PER_CALL = 6.4
CHUNK_CALLS = 5000


@dataclass(frozen=True, slots=True)
class Traffic:
    """What to generate: ``events`` events from ``queues`` queues over ``[start_us, end_us)``."""

    events: int
    start_us: int
    end_us: int
    queues: int = 200
    agents_per_queue: int = 10
    seed: int = 1
    id_prefix: str = "e"


def queue_name(index: int) -> str:
    return f"q{index:03d}"


def event_chunks(traffic: Traffic) -> Iterator[list[Event]]:
    """Exactly ``traffic.events`` events, in chunks sorted by event time.

    A call's later events can fall into the next chunk's time range: a few late events, as
    real streams have.
    """
    rng = random.Random(traffic.seed)
    calls = max(1, round(traffic.events / EVENTS_PER_CALL))
    step_us = max(1, (traffic.end_us - traffic.start_us) // calls)
    emitted = 0
    number = 0
    while emitted < traffic.events:
        timed: list[tuple[int, int, Event]] = []
        # Enough calls for what is left (plus slack for short calls), at most a chunk's worth.
        wanted = math.ceil((traffic.events - emitted) / EVENTS_PER_CALL) + 16
        for _ in range(min(CHUNK_CALLS, wanted)):
            offered_us = traffic.start_us + number * step_us
            _call_events(traffic, rng, number, offered_us, timed)
            number += 1
        timed.sort(key=lambda item: (item[0], item[1]))  # ties keep a call's own order
        chunk = [event for _, _, event in timed[: traffic.events - emitted]]
        emitted += len(chunk)
        for index, event in enumerate(chunk, start=emitted - len(chunk)):
            event["event_id"] = f"{traffic.id_prefix}{index}"
        yield chunk


def _call_events(
    traffic: Traffic,
    rng: random.Random,
    number: int,
    offered_us: int,
    out: list[tuple[int, int, Event]],
) -> None:
    """One call's events; ``out`` gets ``(ts_us, order, event)`` so sorting keeps call order."""
    queue = queue_name(rng.randrange(traffic.queues))
    call = {"queue": queue, "call_id": f"{traffic.id_prefix}c{number}"}
    wait_us = rng.randrange(0, 60 * US_PER_S)

    def emit(ts_us: int, kind: str, **fields: Any) -> None:
        out.append((ts_us, len(out), {"type": kind, "ts": rfc3339(ts_us), **fields}))

    caller = f"+44207946{rng.randrange(10000):04d}"  # raw: the worker pseudonymises it
    emit(offered_us, "call.offered", **call, caller=caller, channel="voice")
    outcome = rng.random()
    if outcome < 0.10:
        emit(offered_us + wait_us, "call.abandoned", **call)
        return
    if outcome < 0.15:
        emit(offered_us + wait_us, "call.exited", **call, reason="timeout", wait_s=wait_us / 1e6)
        return
    agent = f"{queue}-a{rng.randrange(traffic.agents_per_queue)}"
    answered_us = offered_us + wait_us
    talk_us = rng.randrange(30, 600) * US_PER_S
    ended_us = answered_us + talk_us
    wrapped_us = ended_us + rng.randrange(5, 60) * US_PER_S
    emit(answered_us, "call.answered", **call, agent_id=agent)
    emit(answered_us, "agent.state", agent_id=agent, state="on_call", queues=[queue])
    emit(ended_us, "call.ended", **call, agent_id=agent, talk_s=talk_us / 1e6, hold_s=0)
    emit(ended_us, "agent.state", agent_id=agent, state="acw", queues=[queue])
    emit(wrapped_us, "call.wrapup_ended", **call, agent_id=agent, acw_s=5.0)
    emit(wrapped_us, "agent.state", agent_id=agent, state="available", queues=[queue])
    if rng.random() < 0.2:
        emit(wrapped_us, "survey.response", **call, survey="csat", score=rng.randint(1, 5))


_SECOND_TEXT: dict[int, str] = {}


def rfc3339(ts_us: int) -> str:
    """``us_to_rfc3339`` with microseconds always written, the seconds part cached: generating
    ten million timestamps must not cost more than processing them."""
    seconds, micros = divmod(ts_us, US_PER_S)
    prefix = _SECOND_TEXT.get(seconds)
    if prefix is None:
        if len(_SECOND_TEXT) > 100_000:
            _SECOND_TEXT.clear()
        prefix = _SECOND_TEXT[seconds] = us_to_rfc3339(seconds * US_PER_S)[:-1]
    return f"{prefix}.{micros:06d}Z"


def producer_key(event: Event) -> bytes | None:
    """The key a third-party producer would use: the queue, else the agent (CONTRACT.md)."""
    for name in ("queue", "agent_id"):
        value = event.get(name)
        if isinstance(value, str):
            return value.encode()
    return None


def single_messages(events: Iterable[Event]) -> Iterator[Message]:
    """One event per message, keyed by queue (or agent): what third-party producers send."""
    for event in events:
        yield producer_key(event), [event]


def batched_messages(events: Iterable[Event], per_message: int) -> Iterator[Message]:
    """Arrays of up to ``per_message`` events grouped by queue, as callpulse's ingest packs them.

    Events without a queue (agent states) go together with no key, like ``api.ingest`` does.
    """
    grouped: dict[bytes | None, list[Event]] = {}
    for event in events:
        queue = event.get("queue")
        grouped.setdefault(queue.encode() if isinstance(queue, str) else None, []).append(event)
    for key, group in grouped.items():
        for start in range(0, len(group), per_message):
            yield key, group[start : start + per_message]
