"""Per-queue KPI settings: defaults that serve a new user, and refusals that name the key."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from stream.kpi.config import SL_FORMULAS, CentreConfig, ConfigError, QueueConfig


def test_defaults_serve_a_new_user() -> None:
    config = QueueConfig()
    assert config.threshold_s == 20
    assert config.target == 0.8
    assert config.short_abandon_s == 5.0
    assert config.sl_formula == "answered_and_abandoned"
    assert config.timezone == "UTC"
    assert config.zone == ZoneInfo("UTC")


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    "overrides",
    [
        {"threshold_s": 0},  # lowest threshold: only zero waits are in threshold
        {"threshold_s": 3600},  # highest threshold
        {"target": 0.0},  # lowest target
        {"target": 1.0},  # highest target
        {"target": 1},  # an int ratio is fine
        {"short_abandon_s": 0},  # no short abandons at all
        {"short_abandon_s": 2.5},  # fractional seconds
        *({"sl_formula": formula} for formula in SL_FORMULAS),  # every formula
        {"timezone": "Europe/Paris"},  # a zone with DST
        {"timezone": "Asia/Kathmandu"},  # a +05:45 zone
    ],
)
def test_boundary_values_are_accepted(overrides: dict[str, Any]) -> None:
    config = QueueConfig(**overrides)
    for name, value in overrides.items():
        assert getattr(config, name) == value


def _setting_id(overrides: dict[str, Any]) -> str:
    return ",".join(f"{name}={value!r}" for name, value in overrides.items())


@pytest.mark.parametrize(
    "overrides",
    [
        {"threshold_s": -1},  # below zero
        {"threshold_s": 3601},  # above an hour
        {"threshold_s": 20.5},  # not whole seconds: histogram bins are whole
        {"threshold_s": True},  # a boolean is not a number of seconds
        {"threshold_s": "20"},  # a string
        {"target": -0.01},  # below 0
        {"target": 1.01},  # above 1
        {"target": 80},  # a percentage, not a ratio
        {"target": float("nan")},  # NaN compares false with everything
        {"target": "0.8"},  # a string (YAML `target: 80%` gives one)
        {"target": True},  # a boolean (YAML `target: yes`)
        {"short_abandon_s": -0.1},  # negative
        {"short_abandon_s": float("nan")},  # NaN: no abandon would ever be short
        {"short_abandon_s": "5"},  # a string
        {"short_abandon_s": True},  # a boolean
        {"sl_formula": "sla"},  # unknown formula
        {"sl_formula": ""},  # empty formula
        {"timezone": "Mars/Olympus_Mons"},  # unknown zone
        {"timezone": ""},  # empty zone
        {"timezone": "utc"},  # IANA names are case-sensitive
        {"timezone": "../etc/passwd"},  # a path, not a zone
        {"timezone": "Europe"},  # a tzdata directory, not a zone
        {"timezone": 5},  # not a string
    ],
    ids=_setting_id,
)
def test_every_invalid_value_is_refused_naming_the_key(overrides: dict[str, Any]) -> None:
    (key,) = overrides
    with pytest.raises(ConfigError, match=key):
        QueueConfig(**overrides)
    with pytest.raises(ConfigError, match=f"defaults.{key}"):
        CentreConfig.from_mapping({"defaults": overrides})
    with pytest.raises(ConfigError, match=f"queues.sales.{key}"):
        CentreConfig.from_mapping({"queues": {"sales": overrides}})


def test_from_mapping_empty_gives_the_defaults() -> None:
    centre = CentreConfig.from_mapping({})
    assert centre.defaults == QueueConfig()
    assert centre.for_queue("anything") == QueueConfig()


def test_from_mapping_sections_may_be_empty() -> None:
    # YAML `defaults:` with nothing under it parses as None.
    centre = CentreConfig.from_mapping({"defaults": None, "queues": {"sales": None}})
    assert centre.for_queue("sales") == QueueConfig()


def test_from_mapping_queues_inherit_the_overridden_defaults() -> None:
    centre = CentreConfig.from_mapping(
        {
            "defaults": {"threshold_s": 30, "timezone": "Europe/Paris"},
            "queues": {
                "sales": {"threshold_s": 10, "sl_formula": "answered_only"},
                "support": {"target": 0.9},
            },
        }
    )
    assert centre.defaults == QueueConfig(threshold_s=30, timezone="Europe/Paris")
    assert centre.for_queue("sales") == QueueConfig(
        threshold_s=10, sl_formula="answered_only", timezone="Europe/Paris"
    )
    assert centre.for_queue("support") == QueueConfig(
        threshold_s=30, target=0.9, timezone="Europe/Paris"
    )
    # A queue not in the file gets the (overridden) defaults.
    assert centre.for_queue("billing") == centre.defaults


def test_from_mapping_queue_names_are_strings() -> None:
    # YAML reads a queue named 100 as an int; lookups are by string.
    centre = CentreConfig.from_mapping({"queues": {100: {"threshold_s": 15}}})
    assert centre.for_queue("100").threshold_s == 15


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"default": {}}, "default"),  # unknown top-level key (typo)
        ({"defaults": {"treshold_s": 20}}, "defaults.treshold_s"),  # unknown setting (typo)
        ({"queues": {"sales": {"colour": "red"}}}, "queues.sales.colour"),  # unknown setting
        ({"defaults": [1, 2]}, "defaults"),  # defaults not a mapping
        ({"queues": {"sales": 20}}, "queues.sales"),  # a queue's settings not a mapping
        ({"queues": ["sales", "support"]}, "queues"),  # queues as a list, not a mapping
        (
            {"defaults": {"threshold_s": 10, "target": 2}},  # the bad key among good ones
            "defaults.target",
        ),
        (
            {"defaults": {"threshold_s": 10}, "queues": {"vip": {"threshold_s": -5}}},
            "queues.vip.threshold_s",  # the queue, not the defaults
        ),
    ],
    ids=str,
)
def test_from_mapping_refuses_with_a_message_naming_the_place(
    data: dict[Any, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        CentreConfig.from_mapping(data)


def test_queue_config_is_immutable() -> None:
    config = QueueConfig()
    with pytest.raises(AttributeError):
        config.threshold_s = 30  # type: ignore[misc]
