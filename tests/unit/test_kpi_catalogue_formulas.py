"""Catalogue figures derived from one accumulator: surveys, self-service, tickets."""

from __future__ import annotations

from typing import Any

import pytest

from stream.kpi.accumulator import KpiAccumulator
from stream.kpi.formulas import catalogue_figures, contacts_per_resolution, nps


def test_empty_window_gives_null_ratios_and_zero_counts() -> None:
    assert catalogue_figures(KpiAccumulator()) == {
        "esat": None,
        "servqual": dict.fromkeys(
            ("tangibles", "reliability", "responsiveness", "assurance", "empathy")
        ),
        "kb_reads": 0,
        "avg_kb_read_s": None,
        "kb_reads_per_call": None,  # no offered call: null, not 0
        "tickets_opened": 0,
        "tickets_resolved": 0,
        "avg_time_to_resolve_s": None,
        "avg_first_response_s": None,
        "first_response_by_channel": {},
    }


def test_figures_by_hand() -> None:
    acc = KpiAccumulator(offered=4)
    acc.add_survey("esat", 4, 5)
    acc.add_survey("esat", 2, 5)
    acc.add_servqual("empathy", perception=5, expectation=7)
    acc.add_servqual("empathy", perception=6, expectation=6)
    acc.add_servqual("tangibles", perception=7, expectation=5)
    acc.add_kb_read(30.0)
    acc.add_kb_read(None)  # a view without a read time: a read, not a read time
    acc.add_first_response("email", 600.0)
    acc.add_first_response("chat", 30.0)
    acc.add_first_response("chat", 90.0)
    acc.add_time_to_resolve(3600.0)
    figures = catalogue_figures(acc)
    assert figures["esat"] == 3.0
    assert figures["servqual"]["empathy"] == -1.0  # (5 + 6) / 2 - (7 + 6) / 2
    assert figures["servqual"]["tangibles"] == 2.0
    assert figures["servqual"]["reliability"] is None  # no response for the dimension
    assert (figures["kb_reads"], figures["avg_kb_read_s"], figures["kb_reads_per_call"]) == (
        2,
        30.0,
        0.5,
    )
    assert figures["first_response_by_channel"] == {"chat": 60.0, "email": 600.0}
    assert figures["avg_first_response_s"] == 240.0  # over tickets, not a mean of channel means
    assert figures["avg_time_to_resolve_s"] == 3600.0


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([10, 9, 8, 7, 6, 0], 0.0),  # 0-10 scale: 2 promoters, 2 detractors
        ([10, 9, 8, 1], 25.0),  # a 1-10 scale: 1 is a detractor, 9-10 promoters, same cut-offs
        ([7, 8], 0.0),  # passives only
        ([], None),  # no response
    ],
)
def test_nps_scales(scores: list[int], expected: float | None) -> None:
    acc = KpiAccumulator()
    for score in scores:
        acc.add_survey("nps", score, 10)
    assert nps(acc) == expected


@pytest.mark.parametrize(
    ("tickets", "calls", "expected"),
    [
        ([2, 3], (5, 4), 2.5),  # tickets with `contacts` win
        ([], (5, 4), 1.25),  # else contacts per caller until resolved
        ([], (0, 0), None),  # neither: null
    ],
)
def test_contacts_per_resolution(tickets: list[int], calls: tuple[int, int], expected: Any) -> None:
    acc = KpiAccumulator()
    for contacts in tickets:
        acc.add_ticket_resolved(contacts)
    acc.add_ticket_resolved(None)  # a resolved ticket without `contacts` is not in the mean
    assert contacts_per_resolution(acc, *calls) == expected


def test_keyed_sums_merge_and_round_trip() -> None:
    a, b = KpiAccumulator(), KpiAccumulator()
    a.add_servqual("empathy", 5, 7)
    b.add_servqual("empathy", 6, 6)
    b.add_first_response("email", 10.0)
    frozen = b.to_json()
    a.merge(b)
    assert a.servqual == {"empathy": [2.0, 11.0, 13.0]}
    assert b.to_json() == frozen  # merging never changes the other side
    assert KpiAccumulator.from_json(a.to_json()) == a
