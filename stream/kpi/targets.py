"""Targets and their status: is a figure met, at risk of slipping, or missed?

A KPI means little alone: a wallboard colours it against its target. Every figure that can carry
a target has a direction (``min``: higher is better, the target is a floor; ``max``: lower is
better, the target is a ceiling). ``at_risk`` is a figure that still meets its target but by less
than the margin (relative to the target), so a supervisor acts before it is missed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MIN = "min"  # higher is better: the target is a floor
MAX = "max"  # lower is better: the target is a ceiling

MET = "met"
AT_RISK = "at_risk"
MISSED = "missed"

# Every KPI object field that may be given a target in the queue configuration.
TARGET_DIRECTIONS: Mapping[str, str] = {
    "service_level": MIN,
    "answer_rate": MIN,
    "abandon_rate": MAX,
    "asa_s": MAX,
    "avg_wait_s": MAX,
    "max_wait_s": MAX,
    "avg_abandon_s": MAX,
    "aht_s": MAX,
    "avg_talk_s": MAX,
    "avg_hold_s": MAX,
    "avg_acw_s": MAX,
    "transfer_rate": MAX,
    "occupancy": MAX,  # a ceiling: sustained occupancy above it burns agents out
    "csat": MIN,
    "nps": MIN,
    "ces": MIN,  # CES 2.0 ("it was easy"): the higher, the less effort
    "esat": MIN,
    "fcr_rate": MIN,
    "repeat_rate": MAX,
    "contacts_per_resolution": MAX,
    "avg_time_to_resolve_s": MAX,
    "avg_first_response_s": MAX,
    "retention_rate": MIN,
    "kb_reads_per_call": MIN,
    "predicted_service_level": MIN,
    "expected_wait_s": MAX,
}


def target_status(value: float | None, target: float, direction: str, margin: float) -> str | None:
    """``met``, ``at_risk`` or ``missed``; None when the figure has no value (empty window)."""
    if value is None:
        return None
    if direction == MIN:
        if value < target:
            return MISSED
        return AT_RISK if value < target + abs(target) * margin else MET
    if direction == MAX:
        if value > target:
            return MISSED
        return AT_RISK if value > target - abs(target) * margin else MET
    raise ValueError(f"unknown target direction {direction!r}")


def targets_object(
    figures: Mapping[str, Any], targets: Mapping[str, float], margin: float
) -> dict[str, dict[str, Any]]:
    """``{field: {target, direction, status}}`` for every configured target of a KPI object."""
    result: dict[str, dict[str, Any]] = {}
    for name, target in targets.items():
        direction = TARGET_DIRECTIONS[name]
        value = figures.get(name)
        usable: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            usable = float(value)
        result[name] = {
            "target": target,
            "direction": direction,
            "status": target_status(usable, target, direction, margin),
        }
    return result
