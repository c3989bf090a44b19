"""Customer retention rate: (CE - CN) / CS x 100, with CS from the base and all-time counts."""

from __future__ import annotations

import pytest

from stream.kpi.retention import CustomerCounts, customers_at_start, retention_rate


def counts(base: int = 100, before: tuple[int, int] = (0, 0), during: tuple[int, int] = (0, 0),
           after: tuple[int, int] = (0, 0)) -> CustomerCounts:  # fmt: skip
    """(acquired, churned) before, during and after the period."""
    return CustomerCounts(
        base=base,
        acquired_all=before[0] + during[0] + after[0],
        churned_all=before[1] + during[1] + after[1],
        acquired_since_start=during[0] + after[0],
        churned_since_start=during[1] + after[1],
        acquired_in=during[0],
        churned_in=during[1],
    )


@pytest.mark.parametrize(
    ("given", "start", "rate"),
    [
        (counts(), 100, 100.0),  # nothing happens: everyone retained
        (counts(during=(10, 5)), 100, 95.0),  # CE 105, CN 10: (105 - 10) / 100
        (counts(before=(20, 10), during=(0, 11)), 110, 90.0),  # CS counts what came before
        (counts(during=(0, 5), after=(50, 50)), 100, 95.0),  # later events change nothing
        (counts(base=0), 0, None),  # no customer at the start: null, not 0 or 100
        (counts(base=0, before=(1, 3)), -2, None),  # more churns than known customers: null
        (counts(base=10, during=(5, 5)), 10, 50.0),  # new customers who churn count as lost
    ],
)
def test_retention_rate(given: CustomerCounts, start: int, rate: float | None) -> None:
    assert customers_at_start(given) == start
    assert retention_rate(given) == rate
