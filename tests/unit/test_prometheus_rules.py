"""The Prometheus path: rules and routing checked and unit-tested by Prometheus's own tools.

``promtool test rules`` runs deploy/prometheus/tests/; each test here that mutates a rule
(drops the hysteresis, the volume gate, the ``for``...) proves those unit tests would notice.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.alerts.config import PRESETS, resolve
from stream.kpi.config import QueueConfig

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "callpulse.rules.yml"
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def tool(name: str) -> str:
    """Debian's prometheus and prometheus-alertmanager packages (scripts/install-system-deps)."""
    path = shutil.which(name)
    assert path, f"{name} is not installed: run scripts/install-system-deps"
    return path


def run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool(argv[0]), *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules() -> None:
    result = run("promtool", "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_loads_the_rules_and_points_at_alertmanager() -> None:
    result = run("promtool", "check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]


def test_promtool_unit_tests_pass() -> None:
    assert RULE_TESTS, "no rule unit tests in deploy/prometheus/tests/"
    result = run("promtool", "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_unit_tests_and_routing_labels() -> None:
    tested: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            tested |= {test["alertname"] for test in case.get("alert_rule_test", [])}
    for rule in alert_rules():
        assert rule["alert"] in tested, f"{rule['alert']} has no promtool unit test"
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["labels"]["rule"], rule["alert"]


def _number(value: float) -> str:
    return f"{value:g}"


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_each_in_service_preset_has_a_prometheus_rule_with_its_numbers(preset: str) -> None:
    """Both paths alert on the same conditions at the same limits for a new user."""
    rule = resolve(preset, PRESETS[preset], QueueConfig().target)
    matching = [r for r in alert_rules() if r["labels"]["rule"] == preset]
    assert len(matching) == 1, f"no Prometheus rule labelled rule={preset}"
    expr = " ".join(matching[0]["expr"].split())
    if PRESETS[preset].threshold is None:  # the queue's own target, as exported by the API
        target = "max by (queue) (callpulse_service_level_target_ratio)"
        assert f"{rule.op} on (queue) group_left () {target}" in expr, (preset, expr)
        margin = _number(PRESETS[preset].clear_margin)
        assert f"{rule.op} on (queue) group_left () clamp_max({target} + {margin}, 1)" in expr, (
            f"{preset}: no hysteresis at clear"
        )
    else:
        assert f"{rule.op} {_number(rule.threshold)}" in expr, (preset, expr)
        if rule.clear != rule.threshold:
            assert f"{rule.op} {_number(rule.clear)}" in expr, f"{preset}: no hysteresis at clear"
    if rule.min_calls:
        assert f">= {rule.min_calls}" in expr, f"{preset}: no volume gate"
    for_s = matching[0].get("for", "0s")
    assert _seconds(for_s) == rule.for_s, (preset, for_s)


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)([smh])", duration)
    assert match, duration
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


# Each mutation breaks one thing a rule promises; the unit tests must then fail.
MUTATIONS = [
    # service level: no hysteresis (0.82 would resolve at once)
    ("callpulse_service_level_target_ratio) + 0.05", "callpulse_service_level_target_ratio) + 0"),
    # service level against a fixed 0.8 instead of the queue's target (gold's 0.86 would pass)
    (
        "< on (queue) group_left ()\n"
        "              max by (queue) (callpulse_service_level_target_ratio)\n",
        "< 0.8\n",
    ),
    ("> 0.08", "> 0.1"),  # abandonment: no hysteresis
    ("> 90", "> 120"),  # longest wait: no hysteresis
    ("callpulse_longest_wait_seconds > 120", "callpulse_longest_wait_seconds > 150"),  # too late
    ("[15m])) >= 10", "[15m])) >= 0"),  # no volume gate: vip's 0 calls would alert
    ('(callpulse_agents{state!="logged_in"}) > 0', '(callpulse_agents{state!="logged_in"}) >= 0'),
    ('callpulse_agents{state="available"} == 0', 'callpulse_agents{state="available"} >= 0'),
    ("        for: 30s\n", "        for: 0s\n"),  # fires on the first breached evaluation
    ("        for: 1m\n", "        for: 0s\n"),  # no agent for a moment is not news yet
    ('outcome="answered"}[5m]))\n          ) > 60', 'outcome="answered"}[5m]))\n          ) > 90'),
    ('up{job="callpulse"} == 0', 'up{job="callpulse"} == 2'),  # a dead target never alerts
]


@pytest.mark.parametrize(("before", "after"), MUTATIONS)
def test_the_unit_tests_catch_a_broken_rule(tmp_path: Path, before: str, after: str) -> None:
    text = RULES.read_text(encoding="utf-8")
    assert before in text, f"mutation no longer applies: {before!r}"
    (tmp_path / RULES.name).write_text(text.replace(before, after), encoding="utf-8")
    (tmp_path / "tests").mkdir()
    for path in RULE_TESTS:
        shutil.copy(path, tmp_path / "tests" / path.name)
    result = run(
        "promtool", "test", "rules", *(f"tests/{p.name}" for p in RULE_TESTS), cwd=tmp_path
    )
    assert result.returncode != 0, f"{before!r} -> {after!r} went unnoticed"


def test_alertmanager_config_is_valid() -> None:
    result = run("amtool", "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (
            ["alertname=CallpulseServiceLevelLow", "severity=critical", "queue=sales"],
            "on-call,supervisors",
        ),  # pages, and tells supervisors
        (
            ["alertname=CallpulseAbandonRateHigh", "severity=warning", "queue=sales"],
            "supervisors",
        ),  # no page for a warning
        (["alertname=SomethingElse"], "supervisors"),  # the default route
    ],
)
def test_alertmanager_routes(labels: list[str], receivers: str) -> None:
    result = run("amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert result.stdout.strip() == receivers, result.stdout + result.stderr
