"""Calls waiting and the longest wait at a one-minute boundary.

A call is waiting at ``t`` when it was offered strictly before ``t`` and its wait ended at or
after ``t``: the boundaries a finished wait spans are ``offered < t <= ended``.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.kpi.timeutil import BUCKET_US, US_PER_S
from stream.kpi.waiting import BoundaryWaiting, WaitingNow, boundaries_waited, waiting_at

T0_US = 1_709_287_200 * US_PER_S  # 2024-03-01T10:00:00Z, a boundary
M = BUCKET_US


def s(seconds: float) -> int:
    return round(seconds * US_PER_S)


#   10:00        10:01        10:02        10:03        10:04
#     |------------|------------|------------|------------|
#        o--------------x                                      offered 10:00:30, ended 10:01:30
#                  ^ waiting at 10:01 only
#     o------------x                                           offered on 10:00, ended on 10:01
#     ^ not waiting at 10:00 (offered is not < 10:00)
#                  ^ waiting at 10:01 (ended on it: its wait ended at, not before, 10:01)


@pytest.mark.parametrize(
    ("offered_us", "ended_us", "expected"),
    [
        (T0_US + s(30), T0_US + s(50), []),  # within one minute: no boundary
        (T0_US + s(30), T0_US + s(90), [T0_US + M]),  # across one boundary
        (T0_US + s(30), T0_US + M, [T0_US + M]),  # ended exactly on a boundary: waiting at it
        (T0_US + s(30), T0_US + M - 1, []),  # ended a microsecond before the boundary
        (T0_US, T0_US + M - 1, []),  # offered exactly on a boundary: not waiting at it
        (T0_US, T0_US + M, [T0_US + M]),  # from one boundary to the next: only the later one
        (T0_US - 1, T0_US, [T0_US]),  # one microsecond of waiting, across a boundary
        (T0_US + s(30), T0_US + s(210), [T0_US + M, T0_US + 2 * M, T0_US + 3 * M]),  # three
        (T0_US + s(30), T0_US + s(30), []),  # zero wait
        (T0_US + s(90), T0_US + s(30), []),  # ended before offered (clock skew): nothing
    ],
)
def test_boundaries_waited(offered_us: int, ended_us: int, expected: list[int]) -> None:
    assert list(boundaries_waited(offered_us, ended_us)) == expected


@given(
    st.integers(min_value=0, max_value=10**15),
    st.integers(min_value=0, max_value=10 * BUCKET_US),
)
def test_boundaries_waited_matches_the_definition(offered_us: int, wait_us: int) -> None:
    ended_us = offered_us + wait_us
    first = offered_us - offered_us % M
    brute = [t for t in range(first, ended_us + 1, M) if offered_us < t <= ended_us]
    assert list(boundaries_waited(offered_us, ended_us)) == brute


# -- BoundaryWaiting ---------------------------------------------------------------------------


def test_boundary_waiting_keeps_count_and_oldest() -> None:
    crossing = BoundaryWaiting()
    for offered_us in (T0_US + s(20), T0_US + s(5), T0_US + s(40)):
        crossing.add(offered_us)
    assert (crossing.count, crossing.oldest_offered_us) == (3, T0_US + s(5))


@pytest.mark.parametrize(
    ("left", "right", "count", "oldest"),
    [
        ([], [], 0, None),  # both empty
        ([s(5)], [], 1, s(5)),  # empty right
        ([], [s(5)], 1, s(5)),  # empty left
        ([s(5)], [s(2)], 2, s(2)),  # the older one on the right
        ([s(2)], [s(5)], 2, s(2)),  # the older one on the left
    ],
)
def test_boundary_waiting_merge(
    left: list[int], right: list[int], count: int, oldest: int | None
) -> None:
    a, b = BoundaryWaiting(), BoundaryWaiting()
    for offered_us in left:
        a.add(offered_us)
    for offered_us in right:
        b.add(offered_us)
    a.merge(b)
    assert (a.count, a.oldest_offered_us) == (count, oldest)


def test_boundary_waiting_json_round_trip() -> None:
    crossing = BoundaryWaiting()
    crossing.add(T0_US + 7)
    assert BoundaryWaiting.from_json(json.loads(json.dumps(crossing.to_json()))) == crossing
    assert BoundaryWaiting.from_json(BoundaryWaiting().to_json()) == BoundaryWaiting()


# -- waiting_at --------------------------------------------------------------------------------
#
#   at = 10:05. crossings at 10:05: two finished calls offered 10:03:00 and 10:04:30.
#   live: calls offered 10:02:00 (before at: waiting), 10:05:00 (at itself: not yet),
#   10:06:00 (after at: not yet).


def crossings(*offered_us: int) -> BoundaryWaiting:
    crossing = BoundaryWaiting()
    for value in offered_us:
        crossing.add(value)
    return crossing


AT_US = T0_US + 5 * M


@pytest.mark.parametrize(
    ("crossing", "live", "expected"),
    [
        (None, [], WaitingNow(0, None)),  # nobody waits: longest is None, not 0
        (BoundaryWaiting(), [], WaitingNow(0, None)),  # an empty crossing record
        (None, [AT_US], WaitingNow(0, None)),  # live call offered exactly at `at`: not yet
        (None, [AT_US + M], WaitingNow(0, None)),  # live call offered after `at`
        (None, [AT_US - 1], WaitingNow(1, 0.000001)),  # offered a microsecond before
        (
            crossings(T0_US + 3 * M, T0_US + s(270)),
            [],
            WaitingNow(2, 120.0),  # finished calls only: oldest offered 10:03
        ),
        (
            None,
            [T0_US + 2 * M, AT_US, AT_US + M],
            WaitingNow(1, 180.0),  # live calls only: one before `at`
        ),
        (
            crossings(T0_US + 3 * M, T0_US + s(270)),
            [T0_US + 2 * M, AT_US],
            WaitingNow(3, 180.0),  # both: the oldest is live
        ),
        (
            crossings(T0_US + s(30)),
            [T0_US + 2 * M],
            WaitingNow(2, 270.0),  # both: the oldest crossed the boundary and has ended since
        ),
    ],
)
def test_waiting_at(
    crossing: BoundaryWaiting | None, live: list[int], expected: WaitingNow
) -> None:
    assert waiting_at(AT_US, crossing, live) == expected


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10 * BUCKET_US),
            st.one_of(st.none(), st.integers(min_value=0, max_value=5 * BUCKET_US)),
        ),
        max_size=20,
    ),
    st.integers(min_value=1, max_value=11),
)
def test_crossings_plus_live_equals_the_definition(
    calls: list[tuple[int, int | None]], boundary_index: int
) -> None:
    # calls: (offered, wait or None while still waiting). Finished calls go to the crossing
    # records of every boundary they waited across, the others to the live set.
    records: dict[int, BoundaryWaiting] = {}
    live: list[int] = []
    for offered_us, wait_us in calls:
        if wait_us is None:
            live.append(offered_us)
            continue
        for boundary in boundaries_waited(offered_us, offered_us + wait_us):
            records.setdefault(boundary, BoundaryWaiting()).add(offered_us)
    at_us = boundary_index * M
    waiting = [
        offered_us
        for offered_us, wait_us in calls
        if offered_us < at_us and (wait_us is None or offered_us + wait_us >= at_us)
    ]
    expected = WaitingNow(len(waiting), (at_us - min(waiting)) / US_PER_S if waiting else None)
    assert waiting_at(at_us, records.get(at_us), live) == expected


@pytest.mark.parametrize(
    ("age_us", "waiting"),
    [
        (4 * 3600 * US_PER_S, 1),  # waiting exactly 4 h: still believed
        (4 * 3600 * US_PER_S + 1, 0),  # longer: it lost its ending event, no longer counted
    ],
)
def test_a_live_call_stops_counting_after_the_longest_believable_wait(
    age_us: int, waiting: int
) -> None:
    offered_us = 1_709_287_200 * US_PER_S
    assert waiting_at(offered_us + age_us, None, [offered_us]).calls_waiting == waiting
