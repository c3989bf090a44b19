"""Self-service through the real worker and API: article reads (with and without a queue),
mean read time and reads per offered call, against the reference."""

from __future__ import annotations

import pytest

from tests.integration.catalogue import CatalogueRun, catalogue_run, check_family

pytestmark = pytest.mark.broker

FIELDS = ("kb_reads", "avg_kb_read_s", "kb_reads_per_call")


@pytest.fixture(scope="module")
def run(
    request: pytest.FixtureRequest, broker: str, tmp_path_factory: pytest.TempPathFactory
) -> CatalogueRun:
    return catalogue_run(request, broker, tmp_path_factory)


def test_self_service_figures_equal_the_reference(run: CatalogueRun) -> None:
    assert check_family(run, FIELDS) > 0
    centre = run.get("/v1/kpis", window="1h")
    in_queues = sum(item["kb_reads"] for item in centre["queues"])
    # Reads that name no queue count for the centre only.
    assert centre["total"]["kb_reads"] > in_queues > 0
