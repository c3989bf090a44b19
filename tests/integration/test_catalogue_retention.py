"""Customer retention, trends and exports through the real worker and API: the retention
rate from the configured base and customer events; `compare=previous|last_week`; targets; the
catalogue's gauges in /metrics."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.integration.catalogue import (
    US,
    WEEK_US,
    CatalogueRun,
    assert_fields,
    catalogue_run,
    check_family,
    rfc3339,
)
from tests.reference import CATALOGUE_KEYS, KPI_KEYS, parse_ts_us

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def run(
    request: pytest.FixtureRequest, broker: str, tmp_path_factory: pytest.TempPathFactory
) -> CatalogueRun:
    return catalogue_run(request, broker, tmp_path_factory)


def test_retention_rate_equals_the_reference(run: CatalogueRun) -> None:
    assert check_family(run, ("retention_rate", "service_level_status")) > 0
    total = run.get("/v1/kpis", window="1h")["total"]
    assert total["retention_rate"] is not None


@pytest.mark.parametrize("compare", ["previous", "last_week"])
def test_compare_adds_the_other_window_equal_to_the_reference(
    run: CatalogueRun, compare: str
) -> None:
    at = rfc3339(run.now_us - 10 * 60 * US)
    one = run.get("/v1/queues/support/kpis", window="15m", at=at, compare=compare)
    other = one["compare"][compare]
    shift_us = WEEK_US if compare == "last_week" else 15 * 60 * US
    assert parse_ts_us(other["end"]) == parse_ts_us(one["end"]) - shift_us
    names = tuple(n for n in (*KPI_KEYS, *CATALOGUE_KEYS) if n != "longest_wait_s")
    assert_fields(other, run.reference("support", other), names, f"compare={compare}")
    if compare == "last_week":
        assert other["offered"] > 0  # last week's traffic is there


def test_every_figure_has_its_target_status(run: CatalogueRun) -> None:
    centre = run.get("/v1/kpis", window="1h")
    for item in [*centre["queues"], centre["total"]]:
        assert set(item["targets"]) == {"service_level", "abandon_rate", "csat"}
        assert item["service_level_status"] == item["targets"]["service_level"]["status"]


CATALOGUE_GAUGES = (
    "callpulse_occupancy_ratio", "callpulse_fcr_ratio", "callpulse_repeat_caller_ratio",
    "callpulse_csat_ratio", "callpulse_esat_score", "callpulse_customer_retention_percent",
    "callpulse_kb_reads", "callpulse_time_to_resolve_seconds", "callpulse_required_agents",
    "callpulse_predicted_service_level_ratio", "callpulse_expected_wait_seconds",
    "callpulse_servqual_gap", "callpulse_first_response_by_channel_seconds",
)  # fmt: skip


def test_metrics_export_the_catalogue_with_queue_and_window_labels(run: CatalogueRun) -> None:
    text = httpx.get(run.stack.url + "/metrics", timeout=10).text
    one_hour = run.get("/v1/queues/support/kpis", window="1h")
    for name in CATALOGUE_GAUGES:
        # Labels come in name order: a third label (dimension, channel) may come first.
        labels = r'\{[^}]*queue="support",(?:[^}]*,)?window="1h"'
        assert re.search(rf"^{name}{labels}", text, re.M), name
    found = re.search(r'^callpulse_kb_reads\{queue="support",window="1h"\} (\S+)$', text, re.M)
    assert found is not None and float(found.group(1)) == one_hour["kb_reads"]
