"""The ``alerts:`` section of the queue file: rule presets, defaults for every queue, overrides.

Every rule, preset or not, is one shape: a figure (``field``) over a ``window``, compared
(``op``) with a ``threshold``; it resolves once the figure passes ``clear`` (hysteresis), it
fires only after the condition held ``for`` seconds, and windowed figures count only with at
least ``min_calls`` calls in the window. The four presets serve a new user with no config.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import yaml

from stream.kpi.accumulator import KpiAccumulator
from stream.kpi.agents import AGENT_STATES
from stream.kpi.config import CentreConfig, ConfigError
from stream.kpi.formulas import queue_figures
from stream.kpi.windows import WINDOWS

OPS = ("<", "<=", ">", ">=")
SEVERITIES = ("info", "warning", "critical")
RULE_KEYS = ("field", "op", "threshold", "clear", "window", "for", "min_calls", "severity")

# Figures taken now rather than over a window (the rule's window does not apply to them).
AGENT_FIELDS = tuple(f"agents_{state}" for state in (*AGENT_STATES, "logged_in"))
LIVE_FIELDS = ("calls_waiting", "longest_wait_s", "calls_waiting_no_agent", *AGENT_FIELDS)
# Every numeric figure of a window, as the KPI object has it (new KPIs join by themselves).
WINDOW_FIELDS = tuple(
    name
    for name, value in queue_figures(
        KpiAccumulator(), threshold_s=20, sl_formula="answered_and_abandoned"
    ).items()
    if value is None or isinstance(value, int | float)
)
FIELDS = (*WINDOW_FIELDS, *LIVE_FIELDS)
RATIO_FIELDS = frozenset(
    {"service_level", "answer_rate", "abandon_rate", "transfer_rate", "csat", "fcr_rate"}
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)?")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A rule as configured; ``threshold`` None means the queue's service-level target."""

    field: str
    op: str
    threshold: float | None
    clear: float | None = None  # None: the threshold moved by clear_margin towards healthy
    clear_margin: float = 0.0
    window: str = "15m"
    for_s: float = 0.0
    min_calls: int = 0
    severity: str = "warning"
    where: str = dataclass_field(default="", compare=False)  # the config key, for error messages


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule resolved for one queue: every number known."""

    name: str
    field: str
    op: str
    threshold: float
    clear: float
    window: str
    for_s: float
    min_calls: int
    severity: str

    def breaches(self, value: float) -> bool:
        return compare(self.op, value, self.threshold)

    def clears(self, value: float) -> bool:
        """Past the clear threshold, on the healthy side (with clear == threshold: not breached)."""
        return not compare(self.op, value, self.clear)


PRESETS: Mapping[str, RuleSpec] = {
    "service_level_low": RuleSpec(
        "service_level", "<", None, clear_margin=0.05, for_s=30.0, min_calls=10, severity="critical"
    ),
    "abandon_rate_high": RuleSpec(
        "abandon_rate", ">", 0.10, clear_margin=0.02, for_s=30.0, min_calls=10
    ),
    "longest_wait_high": RuleSpec("longest_wait_s", ">", 120.0, clear_margin=30.0),
    # A busy queue often has every agent on a call for a moment: a minute of it is the news.
    "no_agent_available": RuleSpec(
        "calls_waiting_no_agent", ">", 0.0, for_s=60.0, severity="critical"
    ),
}


def compare(op: str, value: float, threshold: float) -> bool:
    if op == "<":
        return value < threshold
    if op == "<=":
        return value <= threshold
    if op == ">":
        return value > threshold
    return value >= threshold


@dataclass(frozen=True)
class AlertConfig:
    """Rules for every queue (``defaults``) and per queue (None: switched off there)."""

    defaults: Mapping[str, RuleSpec] = dataclass_field(default_factory=lambda: dict(PRESETS))
    queues: Mapping[str, Mapping[str, RuleSpec | None]] = dataclass_field(default_factory=dict)

    def rules_for(self, queue: str, target: float) -> tuple[Rule, ...]:
        specs: dict[str, RuleSpec | None] = {**self.defaults, **self.queues.get(queue, {})}
        return tuple(
            resolve(name, spec, target) for name, spec in sorted(specs.items()) if spec is not None
        )

    @classmethod
    def from_mapping(cls, data: Any, centre: CentreConfig) -> AlertConfig:
        """From the ``alerts:`` value; ``alerts: false`` switches every rule off."""
        if data is None or data is True:
            config = cls()
        elif data is False:
            config = cls(defaults={})
        else:
            config = _parse(_mapping(data, "alerts"))
        config.check(centre)
        return config

    def check(self, centre: CentreConfig) -> None:
        """Resolve for every queue named anywhere, so a bad combination stops the start."""
        for queue in {"", *centre.queues, *self.queues}:
            self.rules_for(queue, centre.for_queue(queue).target)


def resolve(name: str, spec: RuleSpec, target: float) -> Rule:
    threshold = target if spec.threshold is None else spec.threshold
    below = spec.op in ("<", "<=")
    clear = spec.clear
    if clear is None:
        moved = threshold + spec.clear_margin if below else threshold - spec.clear_margin
        clear = round(moved, 9)  # 0.8 + 0.05 is 0.8500000000000001 in binary floating point
        if spec.field in RATIO_FIELDS:
            clear = min(max(clear, 0.0), 1.0)  # a ratio never passes 1: it would never resolve
    if (clear < threshold) if below else (clear > threshold):
        side = "at or above" if below else "at or below"
        raise ConfigError(
            f"{spec.where}.clear: {clear} must be {side} the threshold {threshold} of a "
            f"'{spec.op}' rule (the alert resolves once the figure passes it)"
        )
    return Rule(
        name=name,
        field=spec.field,
        op=spec.op,
        threshold=threshold,
        clear=clear,
        window=spec.window,
        for_s=spec.for_s,
        min_calls=spec.min_calls,
        severity=spec.severity,
    )


def load_alert_config(path: Path | None, centre: CentreConfig) -> AlertConfig:
    """The ``alerts:`` section of the queue file (the core parser leaves it to us)."""
    if path is None:
        return AlertConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"queues config {path}: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"queues config {path}: expected a mapping at the top level")
    try:
        return AlertConfig.from_mapping(data.get("alerts"), centre)
    except ConfigError as exc:
        raise ConfigError(f"queues config {path}: {exc}") from None


def _parse(data: Mapping[str, Any]) -> AlertConfig:
    unknown = set(data) - {"defaults", "queues"}
    if unknown:
        raise ConfigError(f"alerts.{sorted(unknown)[0]}: unknown key (known: defaults, queues)")
    named = _rule_set(PRESETS, data.get("defaults"), "alerts.defaults")
    merged = {**PRESETS, **named}
    defaults = {name: spec for name, spec in merged.items() if spec is not None}
    queues = _mapping(data.get("queues", {}), "alerts.queues")
    return AlertConfig(
        defaults=defaults,
        queues={
            str(queue): _rule_set(defaults, rules, f"alerts.queues.{queue}")
            for queue, rules in queues.items()
        },
    )


def _rule_set(bases: Mapping[str, RuleSpec], data: Any, where: str) -> dict[str, RuleSpec | None]:
    """The rules one level names, each over the same rule of the level below (or its preset):
    ``name: {...}`` changes some keys, ``name: true`` keeps them, ``name: false`` turns it off."""
    return {
        str(name): _rule(bases.get(name) or PRESETS.get(name), value, f"{where}.{name}")
        for name, value in _mapping({} if data is None else data, where).items()
    }


def _rule(base: RuleSpec | None, value: Any, where: str) -> RuleSpec | None:
    if value is False:
        return None
    if value is None or value is True:
        if base is None:
            raise ConfigError(f"{where}: not a preset; give field, op and threshold")
        return replace(base, where=where)
    given = _mapping(value, where)
    for key in given:
        if key not in RULE_KEYS:
            raise ConfigError(f"{where}.{key}: unknown key (known: {', '.join(RULE_KEYS)})")
    if base is None:
        missing = [key for key in ("field", "op", "threshold") if key not in given]
        if missing:
            raise ConfigError(f"{where}.{missing[0]}: required for a rule that is not a preset")
        base = RuleSpec(field="", op=">", threshold=None)
    changes = {_attribute(key): _value(key, raw, f"{where}.{key}") for key, raw in given.items()}
    spec = replace(base, **changes, where=where)
    if spec.threshold is None and spec.field != "service_level":
        raise ConfigError(f"{where}.threshold: required (only service_level defaults to target)")
    return spec


def _attribute(key: str) -> str:
    return "for_s" if key == "for" else key


def _value(key: str, raw: Any, where: str) -> Any:
    if key == "field":
        return _choice(raw, FIELDS, where)
    if key == "op":
        return _choice(raw, OPS, where)
    if key == "window":
        return _choice(raw, WINDOWS, where)
    if key == "severity":
        return _choice(raw, SEVERITIES, where)
    if key == "for":
        return duration_s(raw, where)
    if key == "min_calls":
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
            raise ConfigError(f"{where}: must be a whole number >= 0, not {raw!r}")
        return raw
    return _number(raw, where)  # threshold, clear


def duration_s(raw: Any, where: str) -> float:
    """Seconds as a number, or text like ``90s``, ``2m``, ``1h``, ``500ms``."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        seconds = float(raw)
    elif isinstance(raw, str) and (match := _DURATION.fullmatch(raw.strip())):
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    else:
        raise ConfigError(f"{where}: a duration such as 30s, 2m or 1h, not {raw!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{where}: must be a finite duration >= 0, not {raw!r}")
    return seconds


def _number(raw: Any, where: str) -> float:
    """YAML hands over whatever was written: ``80%`` or ``"0.8"`` must not pass as a number."""
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ConfigError(f"{where}: must be a finite number, not {raw!r}")
    return float(raw)


def _choice(raw: Any, allowed: tuple[str, ...], where: str) -> str:
    if not isinstance(raw, str) or raw not in allowed:
        raise ConfigError(f"{where}: {raw!r} is not one of {', '.join(allowed)}")
    return raw


def _mapping(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, not {data!r}")
    return data
