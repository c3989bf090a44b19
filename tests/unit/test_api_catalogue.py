"""Every catalogue figure the API serves equals the independent reference, without a broker.

A generated history (tickets, kb reads, customers, every survey, repeat callers) of 45 minutes,
plus the same kind of history a week earlier for ``compare=last_week``, goes through the real
validator, processor and read model; the clock is frozen 50 minutes after the start. ``sales``
has a 10-minute repeat window, so its FCR mixes final and provisional resolutions.

    T0 - 7d        T0 - 7d + 45m          T0           T0 + 45m   T0 + 50m (now)
      |-- last week --|                     |-- history --|.........|
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from api import clock
from api.services import Services
from callpulse.settings import Settings
from stream.kpi.config import CentreConfig, QueueConfig
from stream.kpi.timeutil import US_PER_S, parse_ts_us
from stream.processor import Retention, expire_partition
from tests.reference import CATALOGUE_KEYS, KPI_KEYS, reference_agent_kpis, reference_kpis
from tests.streamgen import generate_history
from tests.unit.apifixtures import TestClient, client_for, compacted, feed, iso, run_worker

T0_US = parse_ts_us("2024-03-08T10:00:00Z")
NOW_US = T0_US + 50 * 60 * US_PER_S
WEEK_US = 7 * 86400 * US_PER_S
QUEUES = ("sales", "support")
REPEAT_WINDOWS_S = {"sales": 600.0, "support": 72 * 3600.0}
CUSTOMER_BASE = 40
CENTRE = CentreConfig(
    queues={
        "sales": QueueConfig(repeat_window_s=REPEAT_WINDOWS_S["sales"]),
        "support": QueueConfig(targets={"abandon_rate": 0.2, "csat": 0.5}),
    },
    customer_base=CUSTOMER_BASE,
)


def _events() -> list[dict[str, Any]]:
    now = generate_history(21, start_us=T0_US, duration_s=45 * 60, queues=QUEUES, calls=220)
    week = generate_history(22, start_us=T0_US - WEEK_US, duration_s=45 * 60, queues=QUEUES,
                            calls=120)  # fmt: skip
    for event in week:  # other calls and tickets; the same callers, agents and customers
        for name in ("call_id", "ticket_id"):
            if name in event:
                event[name] = "w" + event[name]
    return week + now


EVENTS = _events()


@pytest.fixture(scope="module")
def client() -> TestClient:
    store = run_worker(EVENTS, now_us=NOW_US, centre=CENTRE)
    # The worker's periodic expiry, as it runs a minute on: last week's calls that never
    # ended have waited longer than anyone believes and leave the live set.
    expire_partition(store, 0, 10**6, NOW_US, Retention())
    services = Services(settings=Settings(), centre=CENTRE)
    feed(services.model, compacted(store))
    return client_for(services)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "now_us", lambda: NOW_US)


def expected(queue: str | None, served: dict[str, Any]) -> dict[str, Any]:
    return reference_kpis(
        EVENTS,
        queue=queue,
        start_us=parse_ts_us(served["start"]),
        end_us=parse_ts_us(served["end"]),
        now_us=NOW_US,
        repeat_window_s=REPEAT_WINDOWS_S,
        customer_base=CUSTOMER_BASE,
    )


def assert_same(served: dict[str, Any], want: dict[str, Any], where: str) -> None:
    for name, value in want.items():
        got = served[name]
        if isinstance(value, dict):
            assert set(got) == set(value), f"{where}: {name} keys"
            assert_same(got, value, f"{where}.{name}")
        elif isinstance(value, float) and got is not None:
            assert math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-9), f"{where}: {name}"
        else:
            assert got == value, f"{where}: {name} served {got!r}, reference {value!r}"


AT_OFFSETS_MIN = (None, 20, 33, 45)  # live (ends after now), and three past ends


@pytest.mark.parametrize("window", ["5m", "15m", "1h", "today"])
@pytest.mark.parametrize("at_min", AT_OFFSETS_MIN)
def test_every_field_equals_the_reference(
    client: TestClient, window: str, at_min: int | None
) -> None:
    params = {"window": window} | ({"at": iso(T0_US + at_min * 60 * US_PER_S)} if at_min else {})
    centre = client.get("/v1/kpis", params=params).json()
    for item in centre["queues"]:
        assert_same(item, expected(item["queue"], item), f"{item['queue']} {window} {at_min}")
    assert_same(centre["total"], expected(None, centre["total"]), f"total {window} {at_min}")


def test_the_history_exercises_every_family(client: TestClient) -> None:
    total = client.get("/v1/kpis", params={"window": "1h"}).json()["total"]
    for name in CATALOGUE_KEYS:
        assert total[name] is not None, name
    assert set(KPI_KEYS) | set(CATALOGUE_KEYS) <= set(total)
    # support's repeat window is 72 h: every resolution by the repeat rule is still open.
    support = client.get("/v1/queues/support/kpis", params={"window": "1h"}).json()
    assert support["fcr_provisional"] is True
    # sales' window is 10 minutes: resolutions from the first half hour are final by now.
    at = iso(T0_US + 30 * 60 * US_PER_S)
    sales = client.get("/v1/queues/sales/kpis", params={"window": "30m", "at": at}).json()
    assert sales["fcr_rate"] is not None
    assert sales["fcr_provisional"] is False


@pytest.mark.parametrize("compare", ["previous", "last_week"])
@pytest.mark.parametrize("window", ["15m", "today"])
def test_compare_serves_the_same_figures_for_the_other_window(
    client: TestClient, compare: str, window: str
) -> None:
    at = iso(T0_US + 40 * 60 * US_PER_S)
    one = client.get("/v1/queues/support/kpis", params={"window": window, "at": at,
                                                        "compare": compare}).json()  # fmt: skip
    other = one["compare"][compare]
    start_us, end_us = parse_ts_us(one["start"]), parse_ts_us(one["end"])
    shift_us = WEEK_US if compare == "last_week" else (end_us - start_us)
    if compare == "previous" and window == "today":
        shift_us = 86400 * US_PER_S  # yesterday, to the same time
    assert parse_ts_us(other["end"]) == end_us - shift_us
    assert_same(other, expected("support", other), f"support compare={compare}")
    centre = client.get("/v1/kpis", params={"window": window, "at": at, "compare": compare})
    assert centre.json()["total"]["compare"][compare]["end"] == other["end"]


def test_last_week_holds_last_weeks_traffic(client: TestClient) -> None:
    at = iso(T0_US + 45 * 60 * US_PER_S)
    one = client.get("/v1/kpis", params={"window": "1h", "at": at, "compare": "last_week"})
    week = one.json()["total"]["compare"]["last_week"]
    assert week["offered"] == sum(
        1 for e in EVENTS if e["type"] == "call.offered" and e["call_id"].startswith("w")
    )


def test_targets_and_status(client: TestClient) -> None:
    support = client.get("/v1/queues/support/kpis", params={"window": "1h"}).json()
    assert set(support["targets"]) == {"service_level", "abandon_rate", "csat"}
    for name, target in support["targets"].items():
        assert target["status"] in {"met", "at_risk", "missed"}, name
    assert support["service_level_status"] == support["targets"]["service_level"]["status"]


def test_agent_figures_equal_the_reference(client: TestClient) -> None:
    agents = sorted({e["agent_id"] for e in EVENTS if e["type"] == "call.answered"})
    for agent in agents:
        served = client.get(f"/v1/agents/{agent}/kpis", params={"window": "1h"}).json()
        want = reference_agent_kpis(EVENTS, agent_id=agent, start_us=parse_ts_us(served["start"]),
                                    end_us=parse_ts_us(served["end"]), now_us=NOW_US)  # fmt: skip
        assert_same(served, want, agent)
