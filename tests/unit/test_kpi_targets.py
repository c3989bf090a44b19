"""Targets and their status, and the catalogue's per-queue settings in the YAML."""

from __future__ import annotations

from typing import Any

import pytest

from stream.kpi.config import CentreConfig, ConfigError, QueueConfig
from stream.kpi.targets import AT_RISK, MAX, MET, MIN, MISSED, target_status, targets_object


@pytest.mark.parametrize(
    ("value", "target", "direction", "status"),
    [
        (None, 0.8, MIN, None),  # empty window: no status, not "missed"
        (0.79, 0.8, MIN, MISSED),  # below a floor
        (0.8, 0.8, MIN, AT_RISK),  # exactly the floor: met, with no margin left
        (0.839, 0.8, MIN, AT_RISK),  # within 5 % of the target above it
        (0.85, 0.8, MIN, MET),  # above 0.8 x 1.05: clear
        (0.06, 0.05, MAX, MISSED),  # above a ceiling
        (0.05, 0.05, MAX, AT_RISK),  # exactly the ceiling
        (0.047, 0.05, MAX, MET),  # below 0.05 x 0.95: clear
        (-10.0, -5.0, MIN, MISSED),  # a negative NPS target: the margin uses its size
        (-4.8, -5.0, MIN, AT_RISK),
        (0.0, 0.0, MAX, MET),  # a zero target has no margin: met exactly
    ],
)
def test_target_status(value: float | None, target: float, direction: str, status: str) -> None:
    assert target_status(value, target, direction, 0.05) == status


def test_targets_object_lists_every_configured_target() -> None:
    figures = {"service_level": 0.9, "abandon_rate": None, "csat": 0.7}
    targets = {"service_level": 0.8, "abandon_rate": 0.05, "csat": 0.85}
    assert targets_object(figures, targets, 0.05) == {
        "service_level": {"target": 0.8, "direction": MIN, "status": MET},
        "abandon_rate": {"target": 0.05, "direction": MAX, "status": None},
        "csat": {"target": 0.85, "direction": MIN, "status": MISSED},
    }


def test_catalogue_defaults_serve_a_new_user() -> None:
    config = QueueConfig()
    assert config.repeat_window_s == 72 * 3600
    assert config.staffing_target == 0.8  # erlang_target unset: the service-level target
    assert config.all_targets == {"service_level": 0.8}
    assert CentreConfig.from_mapping({}).customer_base == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"repeat_window_s": 0},  # no window: every call would be first contact
        {"repeat_window_s": 8 * 86400},  # longer than the kept history allows
        {"repeat_window_s": "72h"},  # a string
        {"erlang_target": 1.0},  # unreachable: Erlang C never reaches 100 %
        {"erlang_target": 0},  # no target
        {"erlang_target": "0.8"},  # a string
        {"at_risk_margin": -0.1},  # negative
        {"at_risk_margin": 1.0},  # the whole target
        {"targets": {"csat": "85%"}},  # a string target
        {"targets": {"colour": 1}},  # not a KPI field with a target
        {"targets": [0.8]},  # not a mapping
        {"targets": {"asa_s": float("inf")}},  # not finite
    ],
    ids=str,
)
def test_invalid_catalogue_settings_are_refused_naming_the_key(overrides: dict[str, Any]) -> None:
    (name,) = overrides
    with pytest.raises(ConfigError, match=f"queues.vip.{name}"):
        CentreConfig.from_mapping({"queues": {"vip": overrides}})


def test_queue_targets_add_to_the_default_targets() -> None:
    centre = CentreConfig.from_mapping(
        {
            "defaults": {"targets": {"abandon_rate": 0.05, "csat": 0.8}},
            "queues": {"vip": {"targets": {"csat": 0.9}, "erlang_target": 0.9}},
            "customers": {"base": 1200},
        }
    )
    assert centre.for_queue("vip").targets == {"abandon_rate": 0.05, "csat": 0.9}
    assert centre.for_queue("vip").staffing_target == 0.9
    assert centre.for_queue("sales").targets == {"abandon_rate": 0.05, "csat": 0.8}
    assert centre.customer_base == 1200


@pytest.mark.parametrize(
    ("customers", "message"),
    [
        ({"base": -1}, "customers.base"),  # negative base
        ({"base": 1.5}, "customers.base"),  # not whole
        ({"bsae": 1}, "customers.bsae"),  # a typo
        ([1], "customers"),  # not a mapping
    ],
    ids=str,
)
def test_customer_base_is_validated(customers: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CentreConfig.from_mapping({"customers": customers})
