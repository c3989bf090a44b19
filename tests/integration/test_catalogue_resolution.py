"""Resolution through the real worker and API: FCR (flag and repeat-caller rule), its
provisional status, repeat rate and contacts to resolution, against the reference."""

from __future__ import annotations

import pytest

from tests.integration.catalogue import CatalogueRun, catalogue_run, check_family, rfc3339

pytestmark = pytest.mark.broker

FIELDS = ("fcr_rate", "fcr_provisional", "repeat_rate", "contacts_per_resolution")


@pytest.fixture(scope="module")
def run(
    request: pytest.FixtureRequest, broker: str, tmp_path_factory: pytest.TempPathFactory
) -> CatalogueRun:
    return catalogue_run(request, broker, tmp_path_factory)


def test_resolution_figures_equal_the_reference(run: CatalogueRun) -> None:
    assert check_family(run, FIELDS) == len(run.ats()) * 4 * 2


def test_repeat_rule_fcr_is_provisional_within_the_window_and_final_after(
    run: CatalogueRun,
) -> None:
    # support keeps 72 h: everything decided by the repeat rule is still provisional.
    support = run.get("/v1/queues/support/kpis", window="1h")
    assert support["fcr_provisional"] is True
    assert run.reference("support", support)["fcr_provisional"] is True
    # sales' window is 10 minutes: resolutions of calls offered 20+ minutes ago are final.
    at = rfc3339(run.now_us - 20 * 60 * 1_000_000)
    sales = run.get("/v1/queues/sales/kpis", window="30m", at=at)
    assert sales["fcr_rate"] is not None
    assert sales["fcr_provisional"] is False
    assert run.reference("sales", sales)["fcr_rate"] == pytest.approx(sales["fcr_rate"])
