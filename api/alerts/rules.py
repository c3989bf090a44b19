"""A rule's value from a queue's figures, and the words a person reads in a notification."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.alerts.config import LIVE_FIELDS, RATIO_FIELDS, Rule

FIELD_LABELS = {
    "service_level": "service level",
    "abandon_rate": "abandonment rate",
    "answer_rate": "answer rate",
    "longest_wait_s": "longest wait",
    "calls_waiting": "calls waiting",
    "calls_waiting_no_agent": "calls waiting with no agent available",
    "asa_s": "average speed of answer",
    "aht_s": "average handle time",
}
STATUS_WORDS = {
    "pending": "PENDING",
    "firing": "FIRING",
    "resolved": "RESOLVED",
    "cancelled": "CANCELLED",
}
# The healthy side of each comparison: where an alert of that rule resolves.
CLEAR_OPS = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}


def calls_in_window(figures: Mapping[str, Any]) -> int:
    """Calls whose wait ended in the window: what a service level or abandon rate is over."""
    return int(figures["answered"]) + int(figures["abandoned"]) + int(figures["exited"])


def rule_value(rule: Rule, figures: Mapping[str, Any]) -> float | None:
    """The figure the rule watches; None when it has no value or too few calls back it."""
    if rule.min_calls and calls_in_window(figures) < rule.min_calls:
        return None
    value = figures.get(rule.field)
    return None if value is None else float(value)


def format_value(field: str, value: float | None) -> str:
    if value is None:
        return "no value"
    if field in RATIO_FIELDS:
        return f"{value:.1%}"
    if field.endswith("_s"):
        return f"{round(value, 1):g} s"  # 120.4 s: a limit of 120 s must not read as met
    return f"{value:g}"


def summary(queue: str, rule: Rule, status: str, value: float | None) -> str:
    """One line for a chat channel: what, where, how bad, against which limit."""
    label = FIELD_LABELS.get(rule.field, rule.field)
    shown = format_value(rule.field, value)
    over = "" if rule.field in LIVE_FIELDS else f" over {rule.window}"
    if status in ("resolved", "cancelled"):
        limit = f"clears at {CLEAR_OPS[rule.op]} {format_value(rule.field, rule.clear)}"
    else:
        limit = f"{rule.op} {format_value(rule.field, rule.threshold)}"
    return f"[{STATUS_WORDS[status]}] {queue}: {label} {shown}{over} ({limit}; rule {rule.name})"
