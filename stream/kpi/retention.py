"""Customer retention rate: (CE - CN) / CS x 100 over a period (KPIS.md).

CS (customers at the start) is not an event: it is the configured base (customers that existed
before callpulse counted any ``customer.*`` event) plus every acquisition minus every churn
before the period. The worker keeps all-time counts next to the per-minute ones, so CS is
exact however old the data: all-time counts minus the counts from the period's start on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CustomerCounts:
    base: int  # configured customers before any event
    acquired_all: int  # every acquisition ever counted
    churned_all: int
    acquired_since_start: int  # acquisitions from the period's start on (also after its end)
    churned_since_start: int
    acquired_in: int  # acquisitions within the period (CN)
    churned_in: int


def customers_at_start(counts: CustomerCounts) -> int:
    acquired_before = counts.acquired_all - counts.acquired_since_start
    churned_before = counts.churned_all - counts.churned_since_start
    return counts.base + acquired_before - churned_before


def retention_rate(counts: CustomerCounts) -> float | None:
    """Percent; None when there is no customer at the start (CS <= 0) to retain."""
    start = customers_at_start(counts)
    if start <= 0:
        return None
    end = start + counts.acquired_in - counts.churned_in
    return 100.0 * (end - counts.acquired_in) / start
