"""One stack for every catalogue family test: a real worker and API, one generated history.

Starting a worker and an API costs seconds, so the ``test_catalogue_*`` modules share one run
(started by the first module that asks, stopped at the end of the session). The history has
every event kind (tickets, kb reads, customers, all surveys, repeat callers), a week-old part
for ``compare=last_week``, and is delivered the way real feeds are: duplicated, reordered within
30 s, half over HTTP and half straight into Kafka with no message key.

Queue configuration (YAML, as a user writes it): ``sales`` has a 10-minute repeat window, so
its first-contact resolutions become final during the history; ``support`` keeps the default
72 h, so its are still provisional; the centre starts with 40 customers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.stack import STARTUP_TIMEOUT_S, Stack, _ready, start_stack
from tests.reference import parse_ts_us, reference_kpis
from tests.streamgen import duplicate_and_reorder, generate_history

US = 1_000_000
QUEUES = ("sales", "support")
REPEAT_WINDOWS_S = {"sales": 600.0, "support": 72 * 3600.0}
CUSTOMER_BASE = 40
ERLANG_TARGETS = {"sales": 0.9}
WEEK_US = 7 * 86400 * US
QUEUES_YAML = """
defaults:
  targets: {abandon_rate: 0.3, csat: 0.5}
queues:
  sales: {repeat_window_s: 600, erlang_target: 0.9}
customers: {base: 40}
"""


@dataclass
class CatalogueRun:
    stack: Stack
    events: list[dict[str, Any]]
    now_us: int  # when the history was generated: it ends 5 minutes before

    # The instant the last KPI answer's live figures are at (Stack.get_at_second).
    answered_at_us: int = 0

    def get(self, path: str, **params: Any) -> Any:
        if not path.startswith(("/v1/kpis", "/v1/queues/")):
            return self.stack.get(path, **params)
        answer, self.answered_at_us = self.stack.get_at_second(path, **params)
        return answer

    def reference(self, queue: str | None, served: dict[str, Any]) -> dict[str, Any]:
        """The reference for ``served``, which must be the last KPI answer fetched."""
        return reference_kpis(
            self.events,
            queue=queue,
            start_us=parse_ts_us(served["start"]),
            end_us=parse_ts_us(served["end"]),
            now_us=self.answered_at_us or int(time.time() * US),
            repeat_window_s=REPEAT_WINDOWS_S,
            customer_base=CUSTOMER_BASE,
            erlang_target=ERLANG_TARGETS.get(queue or ""),
        )

    def ats(self) -> list[str | None]:
        """Live, and three past window ends inside the history."""
        return [None, *(rfc3339(self.now_us - m * 60 * US) for m in (8, 21, 34))]


_RUNS: dict[str, CatalogueRun] = {}


def catalogue_run(
    request: pytest.FixtureRequest, broker: str, tmp_path_factory: pytest.TempPathFactory
) -> CatalogueRun:
    if "run" not in _RUNS:
        _RUNS["run"] = _start(broker, tmp_path_factory.mktemp("catalogue"))
        request.config.add_cleanup(_RUNS["run"].stack.stop)
    return _RUNS["run"]


def _history(now_us: int) -> list[dict[str, Any]]:
    start_us = now_us - 50 * 60 * US
    events = generate_history(31, start_us=start_us, duration_s=45 * 60, queues=QUEUES, calls=350)
    week = generate_history(32, start_us=start_us - WEEK_US, duration_s=45 * 60, queues=QUEUES,
                            calls=80, agents=6)  # fmt: skip
    for event in week:  # its own calls and tickets; the same callers, agents and customers
        event["event_id"] = "w" + event["event_id"]
        for name in ("call_id", "ticket_id"):
            if name in event:
                event[name] = "w" + event[name]
    return week + events


def _start(broker: str, tmp_path: Path) -> CatalogueRun:
    config = tmp_path / "queues.yaml"
    config.write_text(QUEUES_YAML, encoding="utf-8")
    stack = start_stack(broker, tmp_path, "catalogue", api=False, worker=False)
    stack.env["CALLPULSE_QUEUES_CONFIG"] = str(config)
    stack.start_process("worker", "worker")
    stack.start_process("api", "api", "--port", str(stack.port))
    stack.wait_until(lambda: _ready(stack.url), STARTUP_TIMEOUT_S, "API ready")
    now_us = int(time.time() * US)
    events = _history(now_us)
    delivered = duplicate_and_reorder(events, seed=33, duplicate_fraction=0.25)
    half = len(delivered) // 2
    for start in range(0, half, 500):
        reply = httpx.post(f"{stack.url}/v1/events", json=delivered[start : min(start + 500, half)],
                           timeout=30)  # fmt: skip
        assert reply.status_code == 202, reply.text
    stack.produce([orjson.dumps(event) for event in delivered[half:]])
    stack.wait_processed(len(delivered))
    return CatalogueRun(stack, events, now_us)


def rfc3339(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / US, UTC).isoformat()


def assert_fields(
    served: dict[str, Any], expected: dict[str, Any], names: tuple[str, ...], where: str
) -> None:
    """Served figures equal the reference; a live window's time-based ones to 1 % or 2 s."""
    live = parse_ts_us(served["end"]) > time.time() * US
    for name in names:
        _assert_value(served[name], expected[name], f"{where}: {name}", live)


def _assert_value(got: Any, want: Any, where: str, live: bool) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), f"{where}: {got} {want}"
        for key in want:
            _assert_value(got[key], want[key], f"{where}.{key}", live)
    elif isinstance(want, float) and got is not None:
        rel, absolute = (1e-2, 2.0) if live else (1e-9, 1e-9)
        assert math.isclose(got, want, rel_tol=rel, abs_tol=absolute), f"{where}: {got} {want}"
    else:
        assert got == want, f"{where}: served {got!r}, reference {want!r}"


def check_family(run: CatalogueRun, names: tuple[str, ...]) -> int:
    """Every window and `at`, every queue and the total: ``names`` equal the reference."""
    checked = 0
    for at in run.ats():
        for window in ("5m", "15m", "1h", "today"):
            params = {"window": window} | ({"at": at} if at else {})
            centre = run.get("/v1/kpis", **params)
            for item in centre["queues"]:
                assert_fields(item, run.reference(item["queue"], item), names,
                              f"{item['queue']} {window} at={at}")  # fmt: skip
                checked += 1
            total = centre["total"]
            assert_fields(total, run.reference(None, total), names, f"total {window} at={at}")
    return checked
