"""Per-queue KPI settings: the figures a supervisor tunes without reprocessing anything."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stream.kpi import histogram
from stream.kpi.targets import TARGET_DIRECTIONS

DEFAULT_REPEAT_WINDOW_S = 72 * 3600
# The repeat window must fit in the kept history (8 days) with the window it looks across.
MAX_REPEAT_WINDOW_S = 7 * 86400

SL_FORMULAS = (
    "answered_and_abandoned",
    "answered_only",
    "offered",
    "ignore_abandons_within_threshold",
    "abandons_within_threshold_count_as_met",
)


class ConfigError(ValueError):
    """A configuration value that cannot serve; the message names the key."""


@dataclass(frozen=True, slots=True)
class QueueConfig:
    threshold_s: int = 20
    target: float = 0.8
    short_abandon_s: float = 5.0
    sl_formula: str = "answered_and_abandoned"
    timezone: str = "UTC"
    # A caller calling again within this many seconds makes a repeat (FCR, repeat rate).
    repeat_window_s: float = DEFAULT_REPEAT_WINDOW_S
    # Erlang C staffing aims at this service level (None: the queue's ``target``).
    erlang_target: float | None = None
    # Targets of other KPI object fields, e.g. {abandon_rate: 0.05, csat: 0.85}.
    targets: Mapping[str, float] = field(default_factory=dict)
    # A met target closer than this share of it (0.05: 5 %) is ``at_risk``.
    at_risk_margin: float = 0.05

    def __post_init__(self) -> None:
        _require_number("threshold_s", self.threshold_s, whole=True)
        _require_number("target", self.target)
        _require_number("short_abandon_s", self.short_abandon_s)
        self._check_catalogue_settings()
        if not histogram.exact_threshold(self.threshold_s):
            raise ConfigError(histogram.EXACT_THRESHOLDS)
        if not 0.0 <= self.target <= 1.0:
            raise ConfigError("target must be a ratio between 0 and 1 (e.g. 0.8)")
        if not math.isfinite(self.short_abandon_s) or self.short_abandon_s < 0:
            raise ConfigError("short_abandon_s must be a finite number >= 0")
        if self.sl_formula not in SL_FORMULAS:
            raise ConfigError(f"sl_formula must be one of {', '.join(SL_FORMULAS)}")
        if not isinstance(self.timezone, str):
            raise ConfigError("timezone must be an IANA time zone name, e.g. Europe/Paris")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a tzdata folder name
            raise ConfigError(f"timezone {self.timezone!r} is not an IANA time zone") from None

    def _check_catalogue_settings(self) -> None:
        _require_number("repeat_window_s", self.repeat_window_s)
        if not 0 < self.repeat_window_s <= MAX_REPEAT_WINDOW_S:
            raise ConfigError(
                f"repeat_window_s must be > 0 and at most {MAX_REPEAT_WINDOW_S} (7 days)"
            )
        if self.erlang_target is not None:
            _require_number("erlang_target", self.erlang_target)
            if not 0.0 < self.erlang_target < 1.0:
                raise ConfigError("erlang_target must be a ratio above 0 and below 1 (e.g. 0.8)")
        _require_number("at_risk_margin", self.at_risk_margin)
        if not 0.0 <= self.at_risk_margin < 1.0:
            raise ConfigError("at_risk_margin must be a ratio from 0 to below 1 (e.g. 0.05)")
        _check_targets(self.targets)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def staffing_target(self) -> float:
        """The service level Erlang C staffing aims at."""
        return self.target if self.erlang_target is None else self.erlang_target

    @property
    def all_targets(self) -> dict[str, float]:
        """Every target of the KPI object: the service level's and the configured ones."""
        return {"service_level": float(self.target), **self.targets}


@dataclass(frozen=True, slots=True)
class CentreConfig:
    """Defaults for every queue, and overrides for named queues."""

    defaults: QueueConfig = field(default_factory=QueueConfig)
    queues: Mapping[str, QueueConfig] = field(default_factory=dict)
    # Customers before callpulse counted any customer event (retention rate's starting base).
    customer_base: int = 0

    def for_queue(self, queue: str) -> QueueConfig:
        return self.queues.get(queue, self.defaults)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> CentreConfig:
        """Build from the parsed YAML: ``{defaults: {...}, queues: {name: {...}}}``."""
        # Other top-level sections (``alerts``) belong to other readers of the same file.
        unknown = set(data) - {"defaults", "queues", "alerts", "customers"}
        if unknown:
            raise ConfigError(f"unknown top-level key(s): {', '.join(sorted(unknown))}")
        defaults = _queue_config(QueueConfig(), data.get("defaults") or {}, "defaults")
        listed = data.get("queues") or {}
        if not isinstance(listed, Mapping):
            raise ConfigError("queues: expected a mapping of queue name to settings")
        queues = {
            str(name): _queue_config(defaults, overrides or {}, f"queues.{name}")
            for name, overrides in listed.items()
        }
        return cls(defaults=defaults, queues=queues, customer_base=_customer_base(data))


def _customer_base(data: Mapping[str, Any]) -> int:
    section = data.get("customers") or {}
    if not isinstance(section, Mapping):
        raise ConfigError("customers: expected a mapping, e.g. {base: 1200}")
    unknown = set(section) - {"base"}
    if unknown:
        raise ConfigError(f"customers.{sorted(unknown)[0]}: unknown setting (known: base)")
    base = section.get("base", 0)
    if isinstance(base, bool) or not isinstance(base, int) or base < 0:
        raise ConfigError(f"customers.base must be a whole number >= 0, not {base!r}")
    return base


def _key_named(message: str, overrides: Mapping[str, Any]) -> str:
    """The setting a message is about: messages start with it ("target" is in "targets.x")."""
    starts = [k for k in overrides if message.startswith((f"{k} ", f"{k}."))]
    if starts:
        return str(starts[0])
    return next((str(k) for k in overrides if str(k) in message), "")


def _check_targets(targets: object) -> None:
    if not isinstance(targets, Mapping):
        raise ConfigError("targets must be a mapping of KPI field to target, e.g. {csat: 0.85}")
    for name, value in targets.items():
        if name not in TARGET_DIRECTIONS:
            known = ", ".join(sorted(TARGET_DIRECTIONS))
            raise ConfigError(f"targets.{name}: no target for this field (known: {known})")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"targets.{name} must be a number, not {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"targets.{name} must be a finite number")


def _require_number(name: str, value: object, *, whole: bool = False) -> None:
    """YAML hands over whatever was written: a quoted "0.8" must not pass as a number."""
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ConfigError(f"{name} must be a {'whole ' if whole else ''}number, not {value!r}")


def _queue_config(base: QueueConfig, overrides: Mapping[str, Any], where: str) -> QueueConfig:
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings")
    known = set(QueueConfig.__dataclass_fields__)
    for key in overrides:
        if key not in known:
            raise ConfigError(f"{where}.{key}: unknown setting (known: {', '.join(sorted(known))})")
    if isinstance(overrides.get("targets"), Mapping) and isinstance(base.targets, Mapping):
        # A queue adds to (or changes) the default targets instead of dropping them.
        overrides = {**overrides, "targets": {**base.targets, **overrides["targets"]}}
    try:
        return replace(base, **overrides)
    except ConfigError as exc:
        key = _key_named(str(exc), overrides)
        raise ConfigError(f"{where}.{key}: {exc}" if key else f"{where}: {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
