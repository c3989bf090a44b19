"""A generated stream for the fault tests, and what the API serves of it at fixed times.

A snapshot is the full JSON of ``/v1/kpis`` for every window at a few fixed past times, plus
``/v1/agents``: fixed ``at`` values make two runs (or two API processes) comparable field by
field, and the reference can be computed for exactly the bounds each answer states.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from stream.kpi.timeutil import US_PER_S, parse_ts_us, us_to_rfc3339
from tests.figures import assert_same_value
from tests.integration.stack import Stack
from tests.reference import CATALOGUE_KEYS, KPI_KEYS, reference_kpis
from tests.streamgen import duplicate_and_reorder, generate_history

QUEUES = ("sales", "support")
WINDOWS = ("5m", "15m", "1h", "today")
MINUTE_US = 60 * US_PER_S
# Every field the reference computes: the contract's and KPIS.md's catalogue.
REFERENCE_KEYS = (*KPI_KEYS, *CATALOGUE_KEYS)

Event = dict[str, Any]
Snapshot = dict[str, Any]


@dataclass(frozen=True)
class GeneratedStream:
    history: list[Event]  # every distinct event once, in event time
    delivered: list[Event]  # duplicated and reordered within 30 s, as a PBX sends them
    ats: tuple[str, ...]  # the fixed times the snapshots are taken at

    def messages(self, start: int, stop: int, per_message: int) -> list[bytes]:
        """``delivered[start:stop]`` as Kafka message values of ``per_message`` events (1: a
        bare object, more: a JSON array micro-batch)."""
        part = self.delivered[start:stop]
        if per_message == 1:
            return [orjson.dumps(event) for event in part]
        return [orjson.dumps(part[i : i + per_message]) for i in range(0, len(part), per_message)]


def generated_stream(
    seed: int,
    *,
    calls: int = 300,
    agents: int = 10,
    now_us: int | None = None,
    queues: Sequence[str] = QUEUES,
) -> GeneratedStream:
    """35 minutes of traffic ending 5 minutes ago, and snapshot times inside and after it."""
    now_us = now_us if now_us is not None else int(time.time() * US_PER_S)
    start_us = now_us - 40 * 60 * US_PER_S
    history = generate_history(
        seed, start_us=start_us, duration_s=35 * 60, queues=queues, calls=calls, agents=agents
    )
    delivered = duplicate_and_reorder(history, seed + 1, duplicate_fraction=0.25)
    # Past times (never "now"): at the end of the traffic, and 13 and 27 minutes into it.
    ats = tuple(
        us_to_rfc3339(start_us + offset_us)
        for offset_us in (13 * MINUTE_US + 17 * US_PER_S, 27 * MINUTE_US, 36 * MINUTE_US)
    )
    return GeneratedStream(history, delivered, ats)


def snapshot(stack: Stack, ats: Sequence[str], windows: Sequence[str] = WINDOWS) -> Snapshot:
    """Full answers of /v1/kpis (every window) and /v1/agents at each fixed time."""
    taken: Snapshot = {}
    for at in ats:
        for window in windows:
            taken[f"kpis {window} at {at}"] = stack.get("/v1/kpis", window=window, at=at)
        taken[f"agents at {at}"] = stack.get("/v1/agents", at=at)
    return taken


def assert_same_snapshot(got: Snapshot, want: Snapshot) -> None:
    assert_same_value(got, want, "snapshot")


def assert_snapshot_matches_reference(
    taken: Snapshot, history: Sequence[Event], queues: Sequence[str] = QUEUES
) -> int:
    """Every queue and the total of every /v1/kpis answer against the reference."""
    # "Now" for the parts that depend on it (provisional FCR): the API's clock, give or take
    # the seconds this takes; the fixed times are minutes in the past.
    now_us = int(time.time() * US_PER_S)
    compared = 0
    for name, answer in taken.items():
        if not name.startswith("kpis "):
            continue
        start_us, end_us = parse_ts_us(answer["start"]), parse_ts_us(answer["end"])
        served = {item["queue"]: item for item in answer["queues"]}
        assert set(queues) <= set(served), name
        for queue in (*queues, None):
            got = served[queue] if queue else answer["total"]
            want = reference_kpis(
                history, queue=queue, start_us=start_us, end_us=end_us, now_us=now_us
            )
            for key in REFERENCE_KEYS:
                assert_same_value(got[key], want[key], f"{name} {queue}: {key}")
            compared += 1
    return compared


def matches(stack: Stack, ats: Sequence[str], want: Snapshot) -> bool:
    """For wait_until: the served snapshot equals ``want`` (float sums to the last bits)."""
    try:
        assert_same_snapshot(snapshot(stack, ats), want)
    except AssertionError:
        return False
    return True


def settled_snapshot(stack: Stack, ats: Sequence[str], timeout_s: float = 30.0) -> Snapshot:
    """Once all events are counted, the last records may still be on their way to the API:
    the snapshot once two reads in a row are the same."""
    previous = snapshot(stack, ats)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.5)
        current = snapshot(stack, ats)
        try:
            assert_same_snapshot(current, previous)
        except AssertionError:
            previous = current
            continue
        return current
    raise AssertionError(f"figures still moving after {timeout_s} s")
