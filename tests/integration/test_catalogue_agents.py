"""Agents and staffing through the real worker and API: occupancy from the agents' state
histories (per queue, centre, per agent) and Erlang C / A staffing, against the reference."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.integration.catalogue import (
    US,
    CatalogueRun,
    assert_fields,
    catalogue_run,
    check_family,
)
from tests.reference import parse_ts_us, reference_agent_kpis

pytestmark = pytest.mark.broker

FIELDS = ("agents", "occupancy", "required_agents", "predicted_service_level", "expected_wait_s")


@pytest.fixture(scope="module")
def run(
    request: pytest.FixtureRequest, broker: str, tmp_path_factory: pytest.TempPathFactory
) -> CatalogueRun:
    return catalogue_run(request, broker, tmp_path_factory)


def test_occupancy_and_staffing_equal_the_reference(run: CatalogueRun) -> None:
    assert check_family(run, FIELDS) > 0
    total = run.get("/v1/kpis", window="15m")["total"]
    assert 0 < total["occupancy"] <= 1
    assert total["required_agents"] >= 1 and total["expected_wait_s"] is not None


@pytest.mark.parametrize("window", ["15m", "1h"])
def test_per_agent_occupancy_equals_the_reference(run: CatalogueRun, window: str) -> None:
    agents = sorted({e["agent_id"] for e in run.events if e["type"] == "agent.state"})
    # A past window (aligned `at`): time in state of a live window moves between the request
    # and the reference, so comparing those two would race the clock.
    at_us = int(time.time() * US) // (60 * US) * 60 * US
    at = datetime.fromtimestamp(at_us / US, UTC).isoformat()
    for agent in agents:
        served = run.get(f"/v1/agents/{agent}/kpis", window=window, at=at)
        want = reference_agent_kpis(run.events, agent_id=agent,
                                    start_us=parse_ts_us(served["start"]),
                                    end_us=parse_ts_us(served["end"]),
                                    now_us=at_us)  # fmt: skip
        assert_fields(served, want, ("occupancy", "answered", "aht_s", "transferred"), agent)
