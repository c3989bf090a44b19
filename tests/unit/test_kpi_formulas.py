"""Ratios and averages read from an accumulator, each checked against a hand computation."""

from __future__ import annotations

from typing import Any

import pytest

from stream.kpi.accumulator import KpiAccumulator
from stream.kpi.config import SL_FORMULAS
from stream.kpi.formulas import agent_figures, aht_s, nps, queue_figures, ratio, service_level

RATIO_FIELDS = (
    "service_level",
    "answer_rate",
    "abandon_rate",
    "asa_s",
    "avg_wait_s",
    "max_wait_s",
    "avg_abandon_s",
    "aht_s",
    "avg_talk_s",
    "avg_hold_s",
    "avg_acw_s",
    "transfer_rate",
    "csat",
    "nps",
    "ces",
    "fcr_rate",
)


def window_of_a_busy_quarter_hour() -> KpiAccumulator:
    """A window with every kind of contribution, small enough to compute by hand.

    answered waits  4, 20, 21, 35        A = 4, A_T(20) = 2, sum 80
    abandoned waits 3, 5, 25             B = 3, B_s(5) = 1 (5 is not short), B_T(20) = 2, sum 33
    exited          1                    X = 1
    offered         9
    ended           talk 100 hold 20; talk 200 hold 0
    wrap-ups        acw 30, 50, 70
    transferred     1
    csat            5, 4, 3, 1 (scale 5)                   satisfied 2 of 4
    nps             10, 9, 9, 7, 3                         promoters 3, detractors 1, of 5
    ces             2, 3, 7                                sum 12 of 3
    resolutions     (yes, -), (yes, first), (yes, not first), (no, -)   first contact 2 of 4
    """
    acc = KpiAccumulator(offered=9, answered=4, abandoned=3, exited=1, transferred=1)
    for wait_s in (4.0, 20.0, 21.0, 35.0):
        acc.answered_waits.add(wait_s)
    for wait_s in (3.0, 5.0, 25.0):
        acc.add_abandoned_wait(wait_s, short_abandon_s=5.0)
    acc.add_ended(100.0, 20.0)
    acc.add_ended(200.0, 0.0)
    for acw_s in (30.0, 50.0, 70.0):
        acc.add_wrapup(acw_s)
    for score in (5, 4, 3, 1):
        acc.add_survey("csat", score, None)
    for score in (10, 9, 9, 7, 3):
        acc.add_survey("nps", score, None)
    for score in (2, 3, 7):
        acc.add_survey("ces", score, None)
    for resolved, first_contact in ((True, None), (True, True), (True, False), (False, None)):
        acc.add_resolution(resolved=resolved, first_contact=first_contact)
    return acc


def test_queue_figures_by_hand() -> None:
    figures = queue_figures(
        window_of_a_busy_quarter_hour(), threshold_s=20, sl_formula="answered_and_abandoned"
    )
    expected: dict[str, Any] = {
        "offered": 9,
        "answered": 4,
        "abandoned": 3,
        "short_abandoned": 1,
        "exited": 1,
        "answered_in_threshold": 2,  # waits 4 and 20 (20 <= 20)
        "service_level": 2 / (4 + 3 - 1),  # A_T / (A + B - B_s)
        "service_level_threshold_s": 20,
        "answer_rate": 4 / 8,  # A / (A + B + X)
        "abandon_rate": 3 / 8,  # B / (A + B + X)
        "asa_s": 80 / 4,  # answered waits only
        "avg_wait_s": (80 + 33) / 7,  # answered and abandoned, not exited
        "max_wait_s": 35.0,
        "avg_abandon_s": 33 / 3,
        "aht_s": (300 + 20) / 2 + 150 / 3,  # (talk + hold) per ended + ACW per wrap-up
        "avg_talk_s": 300 / 2,
        "avg_hold_s": 20 / 2,
        "avg_acw_s": 150 / 3,
        "transferred": 1,
        "transfer_rate": 1 / 4,  # transferred / A
        "csat": 2 / 4,
        "nps": 100 * (3 - 1) / 5,
        "ces": 12 / 3,
        "fcr_rate": 2 / 4,
    }
    assert figures == pytest.approx(expected)


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        # Same window: A = 4, A_T = 2, B = 3, B_s = 1, B_T = 2, X = 1.
        ("answered_and_abandoned", 2 / (4 + 3 - 1)),  # short abandons leave the denominator
        ("answered_only", 2 / 4),  # abandons ignored altogether
        ("offered", 2 / (4 + 3 + 1)),  # every handled call, exits included
        ("ignore_abandons_within_threshold", 2 / (4 + 3 - 2)),  # abandons <= T leave it
        ("abandons_within_threshold_count_as_met", (2 + 2) / (4 + 3 + 1)),  # and count as met
    ],
)
def test_every_service_level_formula_on_one_window(formula: str, expected: float) -> None:
    figures = queue_figures(window_of_a_busy_quarter_hour(), threshold_s=20, sl_formula=formula)
    assert figures["service_level"] == pytest.approx(expected)


# Counts: (formula, a_t, answered, abandoned, short_abandoned, abandoned_t, exited, expected)
FORMULA_COUNTS_ROWS: list[tuple[str, int, int, int, int, int, int, float | None]] = [
    ("answered_and_abandoned", 8, 10, 4, 1, 2, 2, 8 / 13),  # a busy window
    ("answered_and_abandoned", 0, 0, 3, 3, 3, 0, None),  # only short abandons: 0 / 0
    ("answered_and_abandoned", 0, 0, 0, 0, 0, 5, None),  # only exits: not in this formula
    ("answered_only", 8, 10, 4, 1, 2, 2, 8 / 10),  # a busy window
    ("answered_only", 0, 0, 4, 1, 2, 2, None),  # nothing answered: 0 / 0
    ("offered", 8, 10, 4, 1, 2, 2, 8 / 16),  # a busy window
    ("offered", 0, 0, 0, 0, 0, 2, 0.0),  # only exits: 0 / 2 is 0, not None
    ("ignore_abandons_within_threshold", 8, 10, 4, 1, 2, 2, 8 / 12),  # a busy window
    ("ignore_abandons_within_threshold", 0, 0, 2, 1, 2, 0, None),  # every abandon within T
    ("abandons_within_threshold_count_as_met", 8, 10, 4, 1, 2, 2, 10 / 16),  # a busy window
    ("abandons_within_threshold_count_as_met", 0, 0, 2, 2, 2, 0, 1.0),  # abandons within T met
    ("abandons_within_threshold_count_as_met", 0, 0, 0, 0, 0, 0, None),  # empty window
]


def test_the_table_covers_every_configurable_formula() -> None:
    assert {row[0] for row in FORMULA_COUNTS_ROWS} == set(SL_FORMULAS)


@pytest.mark.parametrize(
    ("formula", "a_t", "answered", "abandoned", "short", "abandoned_t", "exited", "expected"),
    FORMULA_COUNTS_ROWS,
)
def test_service_level_from_counts(
    formula: str,
    a_t: int,
    answered: int,
    abandoned: int,
    short: int,
    abandoned_t: int,
    exited: int,
    expected: float | None,
) -> None:
    value = service_level(
        formula,
        a_t=a_t,
        answered=answered,
        abandoned=abandoned,
        short_abandoned=short,
        abandoned_t=abandoned_t,
        exited=exited,
    )
    if expected is None:
        assert value is None
    else:
        assert value == pytest.approx(expected)


def test_service_level_refuses_an_unknown_formula() -> None:
    with pytest.raises(ValueError, match="sla"):
        service_level(
            "sla", a_t=0, answered=1, abandoned=0, short_abandoned=0, abandoned_t=0, exited=0
        )


@pytest.mark.parametrize("formula", SL_FORMULAS)
def test_empty_window_gives_none_for_every_ratio(formula: str) -> None:
    figures = queue_figures(KpiAccumulator(), threshold_s=20, sl_formula=formula)
    assert {name: figures[name] for name in RATIO_FIELDS} == dict.fromkeys(RATIO_FIELDS)
    assert figures["offered"] == figures["answered"] == figures["answered_in_threshold"] == 0


def test_empty_agent_window_gives_none_for_every_ratio() -> None:
    figures = agent_figures(KpiAccumulator())
    assert [figures[k] for k in ("aht_s", "avg_talk_s", "avg_hold_s", "avg_acw_s", "csat")] == [
        None
    ] * 5


@pytest.mark.parametrize(
    ("ended", "wrapups", "expected"),
    [
        ([(100.0, 20.0), (200.0, 0.0)], [30.0, 60.0], 160.0 + 45.0),  # both parts
        ([(100.0, 20.0), (200.0, 0.0)], [], 160.0),  # no wrap-up: the ACW part is 0
        ([(100.0, 0.0)], [30.0, 60.0, 90.0], 100.0 + 60.0),  # more wrap-ups than ended calls
        ([], [30.0], None),  # no ended call: no AHT, even with a wrap-up
        ([], [], None),  # empty window
        ([(0.0, 0.0)], [], 0.0),  # a zero-length call: 0, not None
    ],
)
def test_aht_s(
    ended: list[tuple[float, float]], wrapups: list[float], expected: float | None
) -> None:
    acc = KpiAccumulator()
    for talk_s, hold_s in ended:
        acc.add_ended(talk_s, hold_s)
    for acw_s in wrapups:
        acc.add_wrapup(acw_s)
    assert aht_s(acc) == expected


def test_talk_hold_acw_without_wrapups() -> None:
    acc = KpiAccumulator()
    acc.add_ended(90.0, 30.0)
    figures = queue_figures(acc, threshold_s=20, sl_formula="answered_and_abandoned")
    assert (figures["avg_talk_s"], figures["avg_hold_s"], figures["avg_acw_s"]) == (
        90.0,
        30.0,
        None,  # no wrap-up in the window
    )
    assert figures["aht_s"] == 120.0


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([10, 9, 9, 7, 3], 40.0),  # 3 promoters, 1 detractor, 5 responses
        ([10, 10], 100.0),  # all promoters
        ([0, 6], -100.0),  # all detractors
        ([7, 8], 0.0),  # all passives: 0, not None
        ([], None),  # no response
    ],
)
def test_nps(scores: list[int], expected: float | None) -> None:
    acc = KpiAccumulator()
    for score in scores:
        acc.add_survey("nps", score, None)
    assert nps(acc) == expected


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (1, 4, 0.25),  # plain
        (0, 4, 0.0),  # zero numerator: 0, not None
        (0, 0, None),  # zero denominator: None, never an error
        (3, 0, None),  # zero denominator with a numerator: still None
        (1.5, 0.5, 3.0),  # floats
    ],
)
def test_ratio(numerator: float, denominator: float, expected: float | None) -> None:
    assert ratio(numerator, denominator) == expected


@pytest.mark.parametrize(
    ("threshold_s", "a_t", "service_level_value"),
    [
        (3, 0, 0 / 6),  # below every answered wait
        (4, 1, 1 / 6),  # exactly the shortest answered wait
        (20, 2, 2 / 6),  # the default
        (34, 3, 3 / 6),  # just under the longest wait
        (35, 4, 4 / 6),  # exactly the longest wait
    ],
)
def test_threshold_is_a_query_parameter(
    threshold_s: int, a_t: int, service_level_value: float
) -> None:
    figures = queue_figures(
        window_of_a_busy_quarter_hour(),
        threshold_s=threshold_s,
        sl_formula="answered_and_abandoned",
    )
    assert figures["answered_in_threshold"] == a_t
    assert figures["service_level_threshold_s"] == threshold_s
    assert figures["service_level"] == pytest.approx(service_level_value)


def test_in_threshold_counts_can_be_given() -> None:
    # The whole-centre total sums each queue's own A_T and B_T (each queue its own threshold).
    figures = queue_figures(
        window_of_a_busy_quarter_hour(),
        threshold_s=20,
        sl_formula="abandons_within_threshold_count_as_met",
        a_t=3,
        abandoned_t=1,
    )
    assert figures["answered_in_threshold"] == 3
    assert figures["service_level"] == pytest.approx((3 + 1) / 8)


def test_unknown_waits_count_in_answered_but_in_no_wait_figure() -> None:
    # Two answered calls, only one with a known wait (its offered event never came).
    acc = KpiAccumulator(answered=2)
    acc.answered_waits.add(10.0)
    figures = queue_figures(acc, threshold_s=20, sl_formula="answered_only")
    assert figures["asa_s"] == 10.0  # over the one known wait
    assert figures["avg_wait_s"] == 10.0
    assert figures["answer_rate"] == 1.0
    assert figures["service_level"] == 1 / 2  # A_T / A: the unknown one is not in threshold


def test_max_wait_comes_from_either_outcome() -> None:
    acc = KpiAccumulator(answered=1, abandoned=1)
    acc.answered_waits.add(12.0)
    acc.add_abandoned_wait(48.0, 5.0)
    figures = queue_figures(acc, threshold_s=20, sl_formula="answered_and_abandoned")
    assert figures["max_wait_s"] == 48.0
    assert figures["avg_abandon_s"] == 48.0
    assert figures["asa_s"] == 12.0


def test_agent_figures_by_hand() -> None:
    acc = KpiAccumulator(answered=2, transferred=1)
    acc.add_ended(120.0, 30.0)
    acc.add_ended(60.0, 0.0)
    acc.add_wrapup(20.0)
    acc.add_survey("csat", 5, None)
    acc.add_survey("csat", 2, None)
    acc.add_survey("esat", 4, None)  # the agent's own satisfaction
    assert agent_figures(acc) == {
        "answered": 2,
        "aht_s": (180.0 + 30.0) / 2 + 20.0,
        "avg_talk_s": 90.0,
        "avg_hold_s": 15.0,
        "avg_acw_s": 20.0,
        "ended": 2,
        "transferred": 1,
        "csat": 0.5,
        "esat": 4.0,
    }
