"""Wait histogram: whole-second bins make "answered within T" exact for any whole-second T.

Bin ``k`` holds waits in ``(k - 1, k]``:

    wait (s)   0    0.000001 .. 1    1.000001 .. 2    ...   19.000001 .. 20   20.000001 .. 21
    bin        0    1                2                      20                21
                                                            └─ within 20 s ─┘ └ not within ┘
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.kpi.config import ConfigError, QueueConfig
from stream.kpi.histogram import (
    FINE_LIMIT_S,
    OVERFLOW_S,
    Histogram,
    add_wait,
    bin_upper_s,
    count_at_most,
    from_json,
    merge_into,
    to_json,
)

MICRO = 1e-6


@pytest.mark.parametrize(
    ("wait_s", "expected_upper_s"),
    [
        (0.0, 0),  # zero wait: its own bin, within every threshold
        (-3.0, 0),  # a negative wait (clock skew) shares bin 0
        (MICRO, 1),  # just above zero: bin 1
        (1.0, 1),  # a whole second is the top of its bin
        (19.999999, 20),  # just under the threshold
        (20.0, 20),  # exactly the threshold
        (20.000001, 21),  # one microsecond over: next bin
        (599.5, 600),  # last fine bin
        (600.0, 600),  # the fine limit itself is still a fine bin
        (600.000001, 610),  # past 600 s bins widen to 10 s
        (605.0, 610),  # inside a 10 s bin
        (3600.0, 3600),  # the medium limit is a 10 s bin top
        (3600.000001, 3660),  # past an hour bins widen to 60 s
        (7 * 86400.0, OVERFLOW_S),  # a week: the last bin
        (30 * 86400.0, OVERFLOW_S),  # longer than a week: clamped into the last bin
    ],
)
def test_bin_upper_s(wait_s: float, expected_upper_s: int) -> None:
    assert bin_upper_s(wait_s) == expected_upper_s


@pytest.mark.parametrize(
    "threshold_s",
    [
        1,  # smallest positive threshold
        5,  # the short-abandon default
        20,  # the service-level default
        59,  # an odd one
        600,  # the last exact-everywhere threshold
    ],
)
def test_threshold_is_exact_at_whole_seconds(threshold_s: int) -> None:
    hist: Histogram = {}
    add_wait(hist, threshold_s - MICRO)  # just under: within
    add_wait(hist, float(threshold_s))  # exactly T: within ("<= T")
    add_wait(hist, threshold_s + MICRO)  # one microsecond over: not within
    assert count_at_most(hist, threshold_s) == 2


@pytest.mark.parametrize(
    ("waits_s", "threshold_s", "expected"),
    [
        ([], 20, 0),  # empty histogram
        ([0.0], 0, 1),  # threshold 0: only zero waits are in it
        ([MICRO], 0, 0),  # any positive wait misses threshold 0
        ([600.5, 610.0], 610, 2),  # past 600 s: exact on multiples of 10
        ([610.000001], 610, 0),  # ...and one microsecond over still misses
        ([601.0], 600, 0),  # the 610 bin is not within 600
        ([3600.0, 3659.0], 3660, 2),  # past an hour: exact on multiples of 60
        ([5.0, 50.0, 500.0, 5000.0], 10**9, 4),  # a threshold above everything
    ],
)
def test_count_at_most(waits_s: list[float], threshold_s: int, expected: int) -> None:
    hist: Histogram = {}
    for wait_s in waits_s:
        add_wait(hist, wait_s)
    assert count_at_most(hist, threshold_s) == expected


@given(
    st.lists(st.integers(min_value=0, max_value=1_000 * 1_000_000)),
    st.integers(min_value=0, max_value=FINE_LIMIT_S),
)
def test_count_at_most_matches_brute_force_below_the_fine_limit(
    waits_us: list[int], threshold_s: int
) -> None:
    # Waits derived from integer microseconds, as the call state machine makes them.
    hist: Histogram = {}
    for wait_us in waits_us:
        add_wait(hist, wait_us / 1_000_000)
    expected = sum(1 for wait_us in waits_us if wait_us <= threshold_s * 1_000_000)
    assert count_at_most(hist, threshold_s) == expected


def test_merge_into_adds_counts_bin_by_bin() -> None:
    target: Histogram = {0: 1, 20: 2}
    merge_into(target, {20: 3, 21: 1})
    assert target == {0: 1, 20: 5, 21: 1}


def test_merge_into_leaves_the_source_alone() -> None:
    source: Histogram = {5: 1}
    merge_into({}, source)
    assert source == {5: 1}


@given(st.lists(st.floats(min_value=0, max_value=OVERFLOW_S * 2, allow_nan=False)))
def test_from_json_of_to_json_round_trips(waits_s: list[float]) -> None:
    hist: Histogram = {}
    for wait_s in waits_s:
        add_wait(hist, wait_s)
    # Through real JSON text, as the changelog stores it: keys come back as strings.
    assert from_json(json.loads(json.dumps(to_json(hist)))) == hist


def test_to_json_keys_are_strings() -> None:
    assert to_json({20: 2, 610: 1}) == {"20": 2, "610": 1}


@pytest.mark.parametrize(
    "threshold_s",
    [
        600,  # the fine limit
        605,  # past it, between two 10 s bin tops
        610,  # past it, on a 10 s bin top
        1234,  # an odd threshold in the 10 s range
        3599,  # the largest odd threshold
        3600,  # the largest threshold the config accepts
    ],
)
def test_every_threshold_the_config_accepts_is_exact(threshold_s: int) -> None:
    # DESIGN: "the service level for any whole-second threshold is exact at read time", and
    # QueueConfig accepts every whole second up to 3600.
    try:
        QueueConfig(threshold_s=threshold_s)
    except ConfigError:
        return  # a threshold the config refuses need not be exact
    hist: Histogram = {}
    add_wait(hist, threshold_s - 0.5)  # within
    add_wait(hist, float(threshold_s))  # within
    add_wait(hist, threshold_s + MICRO)  # not within
    assert count_at_most(hist, threshold_s) == 2
