"""Surveys through the real worker and API: CSAT, NPS, CES, agent satisfaction and SERVQUAL
gaps per queue and for the centre, and per agent, against the reference."""

from __future__ import annotations

import pytest

from tests.integration.catalogue import (
    CatalogueRun,
    assert_fields,
    catalogue_run,
    check_family,
)
from tests.reference import parse_ts_us, reference_agent_kpis

pytestmark = pytest.mark.broker

FIELDS = ("csat", "nps", "ces", "esat", "servqual")


@pytest.fixture(scope="module")
def run(
    request: pytest.FixtureRequest, broker: str, tmp_path_factory: pytest.TempPathFactory
) -> CatalogueRun:
    return catalogue_run(request, broker, tmp_path_factory)


def test_survey_figures_equal_the_reference(run: CatalogueRun) -> None:
    assert check_family(run, FIELDS) > 0
    total = run.get("/v1/kpis", window="1h")["total"]
    assert None not in (total["esat"], *total["servqual"].values())  # the history has them all


def test_per_agent_satisfaction_equals_the_reference(run: CatalogueRun) -> None:
    agents = sorted({e["agent_id"] for e in run.events if e.get("survey") == "esat"})
    assert agents
    for agent in agents:
        served = run.get(f"/v1/agents/{agent}/kpis", window="1h")
        want = reference_agent_kpis(run.events, agent_id=agent,
                                    start_us=parse_ts_us(served["start"]),
                                    end_us=parse_ts_us(served["end"]))  # fmt: skip
        assert_fields(served, want, ("csat", "esat"), agent)
