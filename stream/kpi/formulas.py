"""Ratios and averages derived from an accumulator when reading. An empty denominator is None."""

from __future__ import annotations

from typing import Any

from stream.kpi.accumulator import SERVQUAL_DIMENSIONS, KpiAccumulator


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def service_level(
    formula: str,
    *,
    a_t: int,
    answered: int,
    abandoned: int,
    short_abandoned: int,
    abandoned_t: int,
    exited: int,
) -> float | None:
    """The five service-level formulas of KPIS.md (names as in ``sl_formula``)."""
    if formula == "answered_and_abandoned":
        return ratio(a_t, answered + abandoned - short_abandoned)
    if formula == "answered_only":
        return ratio(a_t, answered)
    if formula == "offered":
        return ratio(a_t, answered + abandoned + exited)
    if formula == "ignore_abandons_within_threshold":
        return ratio(a_t, answered + abandoned - abandoned_t)
    if formula == "abandons_within_threshold_count_as_met":
        return ratio(a_t + abandoned_t, answered + abandoned + exited)
    raise ValueError(f"unknown service-level formula {formula!r}")


def aht_s(acc: KpiAccumulator) -> float | None:
    """(talk + hold) per ended call, plus ACW per wrap-up (0 when the window has none)."""
    if not acc.ended:
        return None
    acw = acc.acw_s_sum / acc.wrapups if acc.wrapups else 0.0
    return (acc.talk_s_sum + acc.hold_s_sum) / acc.ended + acw


def nps(acc: KpiAccumulator) -> float | None:
    if not acc.nps_responses:
        return None
    return 100.0 * (acc.nps_promoters - acc.nps_detractors) / acc.nps_responses


def queue_figures(
    acc: KpiAccumulator,
    *,
    threshold_s: int,
    sl_formula: str,
    a_t: int | None = None,
    abandoned_t: int | None = None,
) -> dict[str, Any]:
    """Every window figure of the KPI object that comes from one merged accumulator.

    ``a_t`` and ``abandoned_t`` override the histogram counts: the whole-centre total sums each
    queue's own in-threshold counts, as each queue has its own threshold.
    """
    if a_t is None:
        a_t = acc.answered_waits.at_most(threshold_s)
    if abandoned_t is None:
        abandoned_t = acc.abandoned_waits.at_most(threshold_s)
    handled = acc.answered + acc.abandoned + acc.exited
    waits = (acc.answered_waits, acc.abandoned_waits)
    maxima = [w.max_s for w in waits if w.max_s is not None]
    return {
        "offered": acc.offered,
        "answered": acc.answered,
        "abandoned": acc.abandoned,
        "short_abandoned": acc.short_abandoned,
        "exited": acc.exited,
        "answered_in_threshold": a_t,
        "service_level": service_level(
            sl_formula,
            a_t=a_t,
            answered=acc.answered,
            abandoned=acc.abandoned,
            short_abandoned=acc.short_abandoned,
            abandoned_t=abandoned_t,
            exited=acc.exited,
        ),
        "service_level_threshold_s": threshold_s,
        "answer_rate": ratio(acc.answered, handled),
        "abandon_rate": ratio(acc.abandoned, handled),
        "asa_s": ratio(acc.answered_waits.sum_s, acc.answered_waits.count),
        "avg_wait_s": ratio(sum(w.sum_s for w in waits), sum(w.count for w in waits)),
        "max_wait_s": max(maxima) if maxima else None,
        "avg_abandon_s": ratio(acc.abandoned_waits.sum_s, acc.abandoned_waits.count),
        "aht_s": aht_s(acc),
        "avg_talk_s": ratio(acc.talk_s_sum, acc.ended),
        "avg_hold_s": ratio(acc.hold_s_sum, acc.ended),
        "avg_acw_s": ratio(acc.acw_s_sum, acc.wrapups),
        "transferred": acc.transferred,
        "transfer_rate": ratio(acc.transferred, acc.answered),
        "csat": ratio(acc.csat_satisfied, acc.csat_responses),
        "nps": nps(acc),
        "ces": ratio(acc.ces_score_sum, acc.ces_responses),
        "fcr_rate": ratio(acc.first_contact_resolutions, acc.resolutions),
    }


def agent_figures(acc: KpiAccumulator) -> dict[str, Any]:
    """The per-agent figures that make sense for one person."""
    return {
        "answered": acc.answered,
        "aht_s": aht_s(acc),
        "avg_talk_s": ratio(acc.talk_s_sum, acc.ended),
        "avg_hold_s": ratio(acc.hold_s_sum, acc.ended),
        "avg_acw_s": ratio(acc.acw_s_sum, acc.wrapups),
        "ended": acc.ended,
        "transferred": acc.transferred,
        "csat": ratio(acc.csat_satisfied, acc.csat_responses),
        "esat": ratio(acc.esat_score_sum, acc.esat_responses),
    }


def servqual_gaps(acc: KpiAccumulator) -> dict[str, float | None]:
    """Per dimension: mean perception - mean expectation (None: no response for it)."""
    gaps: dict[str, float | None] = dict.fromkeys(SERVQUAL_DIMENSIONS)
    for dimension, (count, perception, expectation) in sorted(acc.servqual.items()):
        gaps[dimension] = (perception - expectation) / count if count else None
    return gaps


def first_response_by_channel(acc: KpiAccumulator) -> dict[str, float | None]:
    return {
        channel: ratio(total_s, count)
        for channel, (count, total_s) in sorted(acc.first_response.items())
    }


def catalogue_figures(acc: KpiAccumulator) -> dict[str, Any]:
    """The KPIS.md figures beyond the queue-traffic ones that come from one accumulator."""
    responses = sum(count for count, _ in acc.first_response.values())
    response_s = sum(total for _, total in acc.first_response.values())
    return {
        "esat": ratio(acc.esat_score_sum, acc.esat_responses),
        "servqual": servqual_gaps(acc),
        "kb_reads": acc.kb_reads,
        "avg_kb_read_s": ratio(acc.kb_read_s_sum, acc.kb_timed_reads),
        "kb_reads_per_call": ratio(acc.kb_reads, acc.offered),
        "tickets_opened": acc.tickets_opened,
        "tickets_resolved": acc.tickets_resolved,
        "avg_time_to_resolve_s": ratio(acc.ticket_resolve_s_sum, acc.tickets_resolve_timed),
        "avg_first_response_s": ratio(response_s, responses),
        "first_response_by_channel": first_response_by_channel(acc),
    }


def contacts_per_resolution(
    acc: KpiAccumulator, call_contacts_sum: int, call_contacts_n: int
) -> float | None:
    """Mean ``contacts`` of resolved tickets; without any, contacts per caller until resolved."""
    if acc.ticket_contacts_n:
        return acc.ticket_contacts_sum / acc.ticket_contacts_n
    return ratio(call_contacts_sum, call_contacts_n)
