"""Bucket accumulators: additive counts and sums, so merged buckets equal one big bucket."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.kpi.accumulator import KpiAccumulator, WaitStats, merged

# -- WaitStats ---------------------------------------------------------------------------------


def test_wait_stats_empty() -> None:
    stats = WaitStats()
    assert (stats.count, stats.sum_s, stats.max_s, stats.hist) == (0, 0.0, None, {})
    assert stats.at_most(20) == 0


def test_wait_stats_add_keeps_count_sum_max_and_bins() -> None:
    stats = WaitStats()
    for wait_s in (3.0, 20.0, 20.5):
        stats.add(wait_s)
    assert stats.count == 3
    assert stats.sum_s == 43.5
    assert stats.max_s == 20.5
    assert stats.hist == {3: 1, 20: 1, 21: 1}
    assert stats.at_most(20) == 2


def test_wait_stats_zero_wait_sets_max() -> None:
    # max 0.0 is a real maximum, not "no wait": it must not be confused with None.
    stats = WaitStats()
    stats.add(0.0)
    assert stats.max_s == 0.0


@pytest.mark.parametrize(
    ("left", "right", "expected_max"),
    [
        ([], [], None),  # both empty: still no maximum
        ([4.0], [], 4.0),  # empty right side
        ([], [4.0], 4.0),  # empty left side
        ([4.0], [9.0], 9.0),  # right side larger
        ([9.0], [4.0], 9.0),  # left side larger
        ([0.0], [], 0.0),  # a zero maximum survives a merge with empty
    ],
)
def test_wait_stats_merge_max(
    left: list[float], right: list[float], expected_max: float | None
) -> None:
    a, b = WaitStats(), WaitStats()
    for wait_s in left:
        a.add(wait_s)
    for wait_s in right:
        b.add(wait_s)
    a.merge(b)
    assert a.max_s == expected_max
    assert a.count == len(left) + len(right)


# -- KpiAccumulator contributions --------------------------------------------------------------


@pytest.mark.parametrize(
    ("wait_s", "short_abandon_s", "short"),
    [
        (0.0, 5.0, True),  # hung up at once
        (4.999999, 5.0, True),  # one microsecond under the threshold
        (5.0, 5.0, False),  # exactly the threshold is not short (strictly less)
        (5.000001, 5.0, False),  # over the threshold
        (9.0, 10.0, True),  # a queue with a longer short-abandon threshold
        (0.0, 0.0, False),  # threshold 0: nothing is short
    ],
)
def test_short_abandon_is_strictly_less_than_the_threshold(
    wait_s: float, short_abandon_s: float, short: bool
) -> None:
    acc = KpiAccumulator()
    acc.add_abandoned_wait(wait_s, short_abandon_s)
    assert acc.short_abandoned == (1 if short else 0)
    assert acc.abandoned_waits.count == 1


@pytest.mark.parametrize(
    ("survey", "score", "scale_max", "expected"),
    [
        ("csat", 5, None, {"csat_responses": 1, "csat_satisfied": 1}),  # top of default scale
        ("csat", 4, None, {"csat_responses": 1, "csat_satisfied": 1}),  # top two of 5
        ("csat", 3, None, {"csat_responses": 1, "csat_satisfied": 0}),  # below the top two
        ("csat", 9, 10, {"csat_responses": 1, "csat_satisfied": 1}),  # scale 10: 9 is top two
        ("csat", 8, 10, {"csat_responses": 1, "csat_satisfied": 0}),  # scale 10: 8 is not
        ("csat", 4, 5, {"csat_responses": 1, "csat_satisfied": 1}),  # explicit default scale
        ("nps", 10, None, {"nps_responses": 1, "nps_promoters": 1}),  # promoter
        ("nps", 9, None, {"nps_responses": 1, "nps_promoters": 1}),  # lowest promoter
        ("nps", 8, None, {"nps_responses": 1}),  # passive
        ("nps", 7, None, {"nps_responses": 1}),  # lowest passive
        ("nps", 6, None, {"nps_responses": 1, "nps_detractors": 1}),  # highest detractor
        ("nps", 0, None, {"nps_responses": 1, "nps_detractors": 1}),  # lowest score
        ("nps", 1, 10, {"nps_responses": 1, "nps_detractors": 1}),  # 1-10 scale accepted
        ("ces", 3, None, {"ces_responses": 1, "ces_score_sum": 3.0}),  # effort score summed
        ("esat", 5, None, {"esat_responses": 1, "esat_score_sum": 5.0}),  # an agent's own score
        ("servqual", 5, None, {}),  # servqual: not in the accumulator
    ],
)
def test_add_survey(
    survey: str, score: float, scale_max: float | None, expected: dict[str, float]
) -> None:
    acc = KpiAccumulator()
    acc.add_survey(survey, score, scale_max)
    assert acc == KpiAccumulator(**expected)


@pytest.mark.parametrize(
    ("resolved", "first_contact", "first"),
    [
        (True, None, True),  # resolved, first_contact unknown: counts as first contact
        (True, True, True),  # resolved on first contact
        (True, False, False),  # resolved, but not on first contact
        (False, None, False),  # not resolved
        (False, True, False),  # not resolved, whatever first_contact says
    ],
)
def test_add_resolution(resolved: bool, first_contact: bool | None, first: bool) -> None:
    acc = KpiAccumulator()
    acc.add_resolution(resolved=resolved, first_contact=first_contact)
    assert acc.resolutions == 1
    assert acc.first_contact_resolutions == (1 if first else 0)


def test_add_ended_and_wrapup() -> None:
    acc = KpiAccumulator()
    acc.add_ended(100.0, 20.0)
    acc.add_ended(50.0, 0.0)
    acc.add_wrapup(30.0)
    assert (acc.ended, acc.talk_s_sum, acc.hold_s_sum) == (2, 150.0, 20.0)
    assert (acc.wrapups, acc.acw_s_sum) == (1, 30.0)


# -- merge equals one bucket -------------------------------------------------------------------

Contribution = Callable[[KpiAccumulator], None]

_wait = st.floats(min_value=0, max_value=7200, allow_nan=False)
_score = st.integers(min_value=0, max_value=10)


def _count(name: str) -> Contribution:
    def apply(acc: KpiAccumulator) -> None:
        setattr(acc, name, getattr(acc, name) + 1)

    return apply


def _answered(wait_s: float) -> Contribution:
    def apply(acc: KpiAccumulator) -> None:
        acc.answered += 1
        acc.answered_waits.add(wait_s)

    return apply


def _abandoned(wait_s: float) -> Contribution:
    def apply(acc: KpiAccumulator) -> None:
        acc.abandoned += 1
        acc.add_abandoned_wait(wait_s, 5.0)

    return apply


# Every kind of contribution the call state machine and the processor make.
contributions = st.one_of(
    st.sampled_from(["offered", "answered", "abandoned", "exited", "transferred"]).map(_count),
    _wait.map(_answered),
    _wait.map(_abandoned),
    st.tuples(_wait, _wait).map(lambda th: lambda acc: acc.add_ended(*th)),
    _wait.map(lambda acw: lambda acc: acc.add_wrapup(acw)),
    st.tuples(
        st.sampled_from(["csat", "nps", "ces", "esat"]), _score, st.sampled_from([None, 5, 10])
    ).map(lambda s: lambda acc: acc.add_survey(*s)),
    st.tuples(st.booleans(), st.sampled_from([None, True, False])).map(
        lambda r: lambda acc: acc.add_resolution(resolved=r[0], first_contact=r[1])
    ),
)


def _assert_json_close(actual: Any, expected: Any) -> None:
    """Equal, except floats (sums added in another order) within a relative 1e-9."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict)
        assert actual.keys() == expected.keys()
        for name in expected:
            _assert_json_close(actual[name], expected[name])
    elif isinstance(expected, float) and isinstance(actual, float):
        assert math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9)
    else:
        assert actual == expected


@given(
    st.lists(st.tuples(contributions, st.integers(min_value=0, max_value=5)), max_size=60),
)
def test_merge_of_buckets_equals_one_bucket(
    placed: list[tuple[Contribution, int]],
) -> None:
    # Each contribution goes both to one big bucket and to one of six small ones.
    whole = KpiAccumulator()
    buckets = [KpiAccumulator() for _ in range(6)]
    for contribute, index in placed:
        contribute(whole)
        contribute(buckets[index])
    _assert_json_close(merged(buckets).to_json(), whole.to_json())


@given(st.lists(contributions, max_size=30), st.lists(contributions, max_size=30))
def test_merge_is_commutative(left: list[Contribution], right: list[Contribution]) -> None:
    a, b = KpiAccumulator(), KpiAccumulator()
    for contribute in left:
        contribute(a)
    for contribute in right:
        contribute(b)
    _assert_json_close(merged([a, b]).to_json(), merged([b, a]).to_json())


def test_merge_leaves_the_other_accumulator_alone() -> None:
    a, b = KpiAccumulator(), KpiAccumulator()
    b.answered_waits.add(12.0)
    before = b.to_json()
    a.merge(b)
    a.answered_waits.add(30.0)  # a's histogram must not be b's
    assert b.to_json() == before


def test_merged_of_nothing_is_empty() -> None:
    assert merged([]).to_json() == KpiAccumulator().to_json()


# -- serialisation -----------------------------------------------------------------------------


@given(st.lists(contributions, max_size=40))
def test_from_json_of_to_json_round_trips(steps: list[Contribution]) -> None:
    acc = KpiAccumulator()
    for contribute in steps:
        contribute(acc)
    # Through JSON text, as the changelog stores it.
    restored = KpiAccumulator.from_json(json.loads(json.dumps(acc.to_json())))
    assert restored == acc


def test_from_json_reads_a_missing_counter_as_zero() -> None:
    # A record written before a counter existed must still load.
    data = KpiAccumulator().to_json()
    del data["first_contact_resolutions"]
    assert KpiAccumulator.from_json(data).first_contact_resolutions == 0


KEYED = ("servqual", "first_response")  # per dimension / channel: empty mappings


def test_empty_accumulator_json() -> None:
    data = KpiAccumulator().to_json()
    assert data["answered_waits"] == {"n": 0, "sum": 0.0, "max": None, "hist": {}}
    assert all(v == 0 for k, v in data.items() if not k.endswith("_waits") and k not in KEYED)
    assert all(data[k] == {} for k in KEYED)
