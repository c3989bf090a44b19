"""A new API process rebuilds its view from Kafka and serves the same figures.

The API keeps no state of its own: it replays the worker's state changelog (and the
dead-letter topic) into memory. Killed and started again on the same settings and port, it
must say it is not ready until that replay has caught up, and from its first "ready" serve
exactly what the old process served: the full JSON of /v1/kpis (every window, three fixed
times), /v1/agents and the invalid-event counters.
"""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from tests.integration.snapshots import (
    assert_same_snapshot,
    assert_snapshot_matches_reference,
    generated_stream,
    matches,
    snapshot,
)
from tests.integration.stack import Stack

pytestmark = pytest.mark.broker

INVALID = [b"{not json", orjson.dumps({"event_id": "x", "type": "call.rang", "ts": 0})]


def _readiness_until_ready(stack: Stack, timeout_s: float = 60.0) -> tuple[list[int], float]:
    """Poll /readyz from the moment the process starts: the statuses seen, and when 200 came.
    Status 0 stands for "not listening yet"."""
    seen: list[int] = []
    started = time.monotonic()
    with httpx.Client(timeout=2) as client:
        while time.monotonic() - started < timeout_s:
            try:
                status = client.get(stack.url + "/readyz").status_code
            except httpx.TransportError:
                status = 0
            if not seen or seen[-1] != status:
                seen.append(status)
            if status == 200:
                return seen, time.monotonic() - started
            assert stack.processes["api"].poll() is None, stack.log("api")[-3000:]
            time.sleep(0.02)
    raise AssertionError(f"API not ready after {timeout_s} s; /readyz said {seen}")


def test_a_restarted_api_serves_the_same_figures(stack: Stack) -> None:
    stream = generated_stream(47)
    stack.produce(stream.messages(0, len(stream.delivered), 25) + INVALID)
    stack.wait_counted(len(stream.history))
    stack.wait_until(lambda: stack.metric_sum("callpulse_events_invalid_total") == 2, 30)
    before = snapshot(stack, stream.ats)
    stack.wait_until(lambda: matches(stack, stream.ats, before), 30, "settled figures")
    before = snapshot(stack, stream.ats)
    invalid_before = stack.metric_sum("callpulse_events_invalid_total")

    stack.kill("api")
    stack.start_process("api", "api", "--port", str(stack.port))
    statuses, ready_s = _readiness_until_ready(stack)

    # Ready means recovered: the very first answers are the old ones, no waiting.
    after = snapshot(stack, stream.ats)
    assert_same_snapshot(after, before)
    assert stack.metric_sum("callpulse_events_invalid_total") == invalid_before == 2
    assert assert_snapshot_matches_reference(after, stream.history) == 3 * 4 * 3
    # Never "ready" before it was; "not ready" (503) shows when the replay outlasts startup.
    assert statuses[-1] == 200
    assert set(statuses[:-1]) <= {0, 503}, statuses
    print(f"\napi-restart: /readyz went {statuses} in {ready_s:.2f} s, figures identical")
