"""Read-time figures of the KPI catalogue that need more than one queue's merged minutes.

Resolution (a join across queues by caller), occupancy (agents' state histories), staffing
(Erlang C / A from the last 15 minutes), retention (all-time customer counts) and targets.
Each function takes what it needs from the read model; the pure formulas live in ``stream.kpi``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from api.readmodel import QueueView, ReadModel
from stream.kpi.accumulator import KpiAccumulator
from stream.kpi.contacts import ContactFacts, ResolutionCounts, count_resolutions
from stream.kpi.erlang import StaffingInput, staffing_figures
from stream.kpi.formulas import contacts_per_resolution, ratio
from stream.kpi.occupancy import occupancy
from stream.kpi.retention import CustomerCounts, retention_rate
from stream.kpi.timeutil import BUCKET_US, US_PER_S, datetime_to_us, us_to_datetime

ARRIVAL_WINDOW_US = 15 * 60 * US_PER_S  # Erlang's arrival rate: offered in the last 15 minutes
COMPARISONS = ("previous", "last_week")


@dataclass(slots=True)
class WindowParts:
    """The additive parts of one KPI object, so the centre total is their exact sum."""

    acc: KpiAccumulator
    resolution: ResolutionCounts
    offered_15m: int


def buckets_between(start_us: int, end_us: int) -> range:
    return range(start_us - start_us % BUCKET_US, end_us, BUCKET_US)


def merged(buckets: dict[int, KpiAccumulator], start_us: int, end_us: int) -> KpiAccumulator:
    acc = KpiAccumulator()
    for bucket in buckets_between(start_us, end_us):
        part = buckets.get(bucket)
        if part is not None:
            acc.merge(part)
    return acc


def window_facts(
    queue: str, view: QueueView, start_us: int, end_us: int
) -> Iterable[tuple[str, ContactFacts]]:
    for bucket in buckets_between(start_us, end_us):
        facts = view.contacts.get(bucket)
        if facts is not None:
            yield queue, facts


def resolution_counts(
    model: ReadModel,
    facts: Iterable[tuple[str, ContactFacts]],
    repeat_window_s: dict[str, float],
    now_us: int,
) -> ResolutionCounts:
    windows_us = {queue: round(seconds * US_PER_S) for queue, seconds in repeat_window_s.items()}
    return count_resolutions(facts, model.callers, windows_us, now_us)


def resolution_figures(counts: ResolutionCounts, acc: KpiAccumulator) -> dict[str, Any]:
    return {
        "fcr_rate": ratio(counts.first_contact, counts.resolutions),
        "fcr_provisional": counts.provisional > 0,
        "repeat_rate": ratio(counts.answered_repeat, counts.answered_known),
        "contacts_per_resolution": contacts_per_resolution(
            acc, counts.contacts_sum, counts.contacts_calls
        ),
    }


def occupancy_figure(busy_us: int, staffed_us: int) -> dict[str, Any]:
    return {"occupancy": occupancy(busy_us, staffed_us)}


def offered_in_last_15m(buckets: dict[int, KpiAccumulator], end_us: int) -> int:
    return sum(
        part.offered
        for bucket in buckets_between(end_us - ARRIVAL_WINDOW_US, end_us)
        if (part := buckets.get(bucket)) is not None
    )


def staffing(
    kpis: dict[str, Any],
    acc: KpiAccumulator,
    offered_15m: int,
    end_us: int,
    now_us: int,
    target: float,
) -> dict[str, Any]:
    """Erlang figures at the window's end; a live window's last 15 minutes end now."""
    elapsed_us = min(end_us, now_us) - (end_us - ARRIVAL_WINDOW_US)
    agents = kpis["agents"]
    waited_s = acc.answered_waits.sum_s + acc.abandoned_waits.sum_s
    patience = None
    if acc.abandoned_waits.count and waited_s > 0:
        # Exponential patience, maximum likelihood: abandons / total seconds callers waited.
        patience = acc.abandoned_waits.count / waited_s
    return staffing_figures(
        StaffingInput(
            arrival_per_s=offered_15m / (elapsed_us / US_PER_S) if elapsed_us > 0 else 0.0,
            aht_s=kpis["aht_s"],
            agents=agents.get("logged_in", 0) - agents.get("paused", 0),
            threshold_s=kpis["service_level_threshold_s"],
            target=target,
            patience_rate_per_s=patience,
        )
    )


def retention_figure(model: ReadModel, base: int, start_us: int, end_us: int) -> float | None:
    """The centre's retention rate over ``[start_us, end_us)`` (every KPI object carries it)."""
    acquired_all = sum(acc.customers_acquired for acc in model.centre_totals.values())
    churned_all = sum(acc.customers_churned for acc in model.centre_totals.values())
    since = KpiAccumulator()
    within = KpiAccumulator()
    for buckets in model.centre_buckets.values():
        for bucket, acc in buckets.items():
            if bucket >= start_us - start_us % BUCKET_US:
                since.merge(acc)
                if bucket < end_us:
                    within.merge(acc)
    return retention_rate(
        CustomerCounts(
            base=base,
            acquired_all=acquired_all,
            churned_all=churned_all,
            acquired_since_start=since.customers_acquired,
            churned_since_start=since.customers_churned,
            acquired_in=within.customers_acquired,
            churned_in=within.customers_churned,
        )
    )


def centre_window(model: ReadModel, start_us: int, end_us: int) -> KpiAccumulator:
    """Events with no queue (kb reads without one, customers) over a window."""
    acc = KpiAccumulator()
    for buckets in model.centre_buckets.values():
        acc.merge(merged(buckets, start_us, end_us))
    return acc


def comparison_at_us(compare: str, window: str, start_us: int, end_us: int, zone: ZoneInfo) -> int:
    """Where the compared window ends: the previous one ends at this one's start (``today``:
    the same time yesterday); ``last_week`` is the same local time seven days before."""
    if compare == "previous":
        return shift_local_days(end_us, -1, zone) if window == "today" else start_us
    if compare == "last_week":
        return shift_local_days(end_us, -7, zone)
    raise ValueError(f"compare must be one of {', '.join(COMPARISONS)}")


def shift_local_days(ts_us: int, days: int, zone: ZoneInfo) -> int:
    """The same wall-clock time ``days`` later in ``zone`` (DST-safe)."""
    local = us_to_datetime(ts_us).astimezone(zone).replace(tzinfo=None)
    shifted = (local + timedelta(days=days)).replace(tzinfo=zone)
    return datetime_to_us(shifted)
