"""Tickets through the real worker and API: opened, resolved, time to resolve, first response
time per channel and contacts per resolution, against the reference."""

from __future__ import annotations

import pytest

from tests.integration.catalogue import CatalogueRun, catalogue_run, check_family

pytestmark = pytest.mark.broker

FIELDS = (
    "tickets_opened",
    "tickets_resolved",
    "avg_time_to_resolve_s",
    "avg_first_response_s",
    "first_response_by_channel",
    "contacts_per_resolution",
)


@pytest.fixture(scope="module")
def run(
    request: pytest.FixtureRequest, broker: str, tmp_path_factory: pytest.TempPathFactory
) -> CatalogueRun:
    return catalogue_run(request, broker, tmp_path_factory)


def test_ticket_figures_equal_the_reference(run: CatalogueRun) -> None:
    assert check_family(run, FIELDS) > 0
    total = run.get("/v1/kpis", window="1h")["total"]
    assert total["tickets_resolved"] > 0 and total["avg_time_to_resolve_s"] is not None
    assert len(total["first_response_by_channel"]) >= 2  # several channels, and "unknown"
