"""Per-queue KPI settings: the figures a supervisor tunes without reprocessing anything."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stream.kpi import histogram

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

    def __post_init__(self) -> None:
        _require_number("threshold_s", self.threshold_s, whole=True)
        _require_number("target", self.target)
        _require_number("short_abandon_s", self.short_abandon_s)
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

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class CentreConfig:
    """Defaults for every queue, and overrides for named queues."""

    defaults: QueueConfig = field(default_factory=QueueConfig)
    queues: Mapping[str, QueueConfig] = field(default_factory=dict)

    def for_queue(self, queue: str) -> QueueConfig:
        return self.queues.get(queue, self.defaults)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> CentreConfig:
        """Build from the parsed YAML: ``{defaults: {...}, queues: {name: {...}}}``."""
        unknown = set(data) - {"defaults", "queues"}
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
        return cls(defaults=defaults, queues=queues)


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
    try:
        return replace(base, **overrides)
    except ConfigError as exc:
        key = next((k for k in overrides if k in str(exc)), "")
        raise ConfigError(f"{where}.{key}: {exc}" if key else f"{where}: {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
