"""The ``alerts:`` section: presets for a new user, overrides, refusals that name the key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from api.alerts.config import AlertConfig, Rule, duration_s, load_alert_config
from stream.kpi.config import CentreConfig, ConfigError, QueueConfig

CENTRE = CentreConfig(queues={"vip": QueueConfig(target=0.9), "sales": QueueConfig()})


def rules_of(config: AlertConfig, queue: str) -> dict[str, Rule]:
    return {rule.name: rule for rule in config.rules_for(queue, CENTRE.for_queue(queue).target)}


def test_no_config_gives_the_four_presets() -> None:
    rules = rules_of(AlertConfig.from_mapping(None, CENTRE), "any-queue")
    assert rules == {
        "service_level_low": Rule(
            "service_level_low", "service_level", "<", 0.8, 0.85, "15m", 30.0, 10, "critical"
        ),
        "abandon_rate_high": Rule(
            "abandon_rate_high", "abandon_rate", ">", 0.1, 0.08, "15m", 30.0, 10, "warning"
        ),
        "longest_wait_high": Rule(
            "longest_wait_high", "longest_wait_s", ">", 120.0, 90.0, "15m", 0.0, 0, "warning"
        ),
        "no_agent_available": Rule(
            "no_agent_available",
            "calls_waiting_no_agent",
            ">",
            0.0,
            0.0,
            "15m",
            60.0,
            0,
            "critical",
        ),
    }


def test_service_level_threshold_follows_each_queues_target() -> None:
    config = AlertConfig()
    vip = rules_of(config, "vip")["service_level_low"]
    assert (vip.threshold, vip.clear) == (0.9, pytest.approx(0.95))


def test_a_target_of_one_clears_at_one_not_above() -> None:
    centre = CentreConfig(queues={"perfect": QueueConfig(target=1.0)})
    rule = AlertConfig().rules_for("perfect", centre.for_queue("perfect").target)[3]
    assert (rule.name, rule.threshold, rule.clear) == ("service_level_low", 1.0, 1.0)


def test_defaults_queue_overrides_generic_rules_and_switching_off() -> None:
    data = {
        "defaults": {
            "longest_wait_high": {"threshold": 60, "for": "10s"},
            "no_agent_available": False,
            "aht_high": {
                "field": "aht_s",
                "op": ">",
                "threshold": 400,
                "clear": 360,
                "window": "1h",
            },
        },
        "queues": {
            "vip": {"longest_wait_high": {"threshold": 30}, "abandon_rate_high": False},
            "sales": {"no_agent_available": True, "aht_high": {"for": "5m"}},
        },
    }
    config = AlertConfig.from_mapping(data, CENTRE)
    other = rules_of(config, "support")
    assert sorted(other) == [
        "abandon_rate_high",
        "aht_high",
        "longest_wait_high",
        "service_level_low",
    ]
    assert (other["longest_wait_high"].threshold, other["longest_wait_high"].clear) == (60, 30)
    assert other["longest_wait_high"].for_s == 10
    assert other["aht_high"] == Rule("aht_high", "aht_s", ">", 400, 360, "1h", 0.0, 0, "warning")
    vip = rules_of(config, "vip")
    assert "abandon_rate_high" not in vip
    # the queue's threshold over the defaults' rule: its `for` stays, clear follows the threshold
    assert (vip["longest_wait_high"].threshold, vip["longest_wait_high"].clear) == (30, 0)
    assert vip["longest_wait_high"].for_s == 10
    sales = rules_of(config, "sales")
    assert sales["no_agent_available"].for_s == 60  # back on, as the preset
    assert sales["aht_high"].for_s == 300 and sales["aht_high"].threshold == 400


def test_alerts_false_switches_everything_off() -> None:
    assert AlertConfig.from_mapping(False, CENTRE).rules_for("sales", 0.8) == ()


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        (0, 0.0),  # no wait at all
        (90, 90.0),  # a plain number is seconds
        (2.5, 2.5),  # fractional seconds
        ("45s", 45.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("500ms", 0.5),
        ("30", 30.0),  # a number in quotes, no unit
    ],
)
def test_durations(raw: Any, seconds: float) -> None:
    assert duration_s(raw, "x") == seconds


def defaults(name: str, **settings: Any) -> dict[str, Any]:
    return {"defaults": {name: settings}}


SL = "service_level_low"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rules": {}}, "alerts.rules: unknown key"),  # a top-level key that does not exist
        ({"defaults": []}, "alerts.defaults: expected a mapping"),  # a list, not a mapping
        ({"queues": ["vip"]}, "alerts.queues: expected a mapping"),  # a list of queue names
        ({"queues": {"vip": ["x"]}}, "alerts.queues.vip: expected a mapping"),  # rule names only
        (defaults(SL, threshold="80%"), f"alerts.defaults.{SL}.threshold: must be a finite"),  # %
        (defaults(SL, threshold=True), f"{SL}.threshold: must be a finite number"),  # YAML `yes`
        (defaults(SL, threshold=float("nan")), "threshold: must be a finite"),  # NaN never compares
        (defaults(SL, op="<<"), f"{SL}.op: '<<' is not one of"),  # unknown comparison
        (defaults(SL, window="2h"), f"{SL}.window: '2h' is not one of"),  # a window not kept
        (defaults(SL, **{"for": "soon"}), f"{SL}.for: a duration"),  # not a duration
        (defaults(SL, **{"for": -1}), f"{SL}.for: must be a finite duration >= 0"),  # negative
        (defaults(SL, min_calls=2.5), f"{SL}.min_calls: must be a whole number"),  # half a call
        (defaults(SL, min_calls=-1), f"{SL}.min_calls: must be a whole number >= 0"),  # negative
        (defaults(SL, severity="urgent"), f"{SL}.severity: 'urgent' is not one of"),  # unknown
        (defaults(SL, treshold=0.7), f"{SL}.treshold: unknown key"),  # a typo
        (defaults(SL, clear=0.7), f"{SL}.clear: 0.7 must be at or above the threshold 0.8"),  # '<'
        (
            defaults("abandon_rate_high", clear=0.2),
            "abandon_rate_high.clear: 0.2 must be at or below the threshold 0.1",
        ),  # clear on the wrong side of a '>' rule
        (
            defaults(SL, clear=0.88),
            f"{SL}.clear: 0.88 must be at or above the threshold 0.9",
        ),  # fine
        # for the default 0.8 target, not for vip's 0.9
        (defaults("busy", field="calls_waiting", op=">"), "defaults.busy.threshold: required"),  # a
        # generic rule needs a threshold (only service_level has a default: the target)
        (
            {"defaults": {"busy": True}},
            "alerts.defaults.busy: not a preset",
        ),  # `true` names presets
        (
            defaults("x", field="occupancy_pct", op=">", threshold=1),
            "x.field: 'occupancy_pct'",
        ),  # no
        # such figure
        (
            defaults("x", field="queue", op=">", threshold=1),
            "x.field: 'queue' is not one of",
        ),  # text
        (
            {"queues": {"vip": {"longest_wait_high": {"threshold": "1m"}}}},
            "alerts.queues.vip.longest_wait_high.threshold: must be a finite number",
        ),  # a queue's override is named with its queue
    ],
)
def test_bad_values_are_refused_naming_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        AlertConfig.from_mapping(data, CENTRE)


def test_the_queue_file_section_is_read_and_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "queues.yml"
    path.write_text(
        "defaults: {target: 0.7}\n"
        "alerts:\n  queues:\n    sales:\n      longest_wait_high: {threshold: 45}\n"
    )
    centre = CentreConfig(defaults=QueueConfig(target=0.7))
    config = load_alert_config(path, centre)
    sales = {rule.name: rule for rule in config.rules_for("sales", 0.7)}
    assert sales["longest_wait_high"].threshold == 45
    assert sales["service_level_low"].threshold == 0.7
    path.write_text("alerts:\n  defaults:\n    longest_wait_high: {threshold: -}\n")
    with pytest.raises(
        ConfigError, match=r"queues\.yml: alerts\.defaults\.longest_wait_high\.threshold"
    ):
        load_alert_config(path, centre)


def test_no_file_means_the_presets() -> None:
    assert load_alert_config(None, CENTRE) == AlertConfig()
