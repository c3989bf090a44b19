"""Wait-time histogram with whole-second bins, so a service level is exact for any threshold.

A wait ``w`` lands in the bin whose upper bound is ``ceil(w)``: the bin ``k`` holds waits in
``(k - 1, k]``. "Answered within T seconds" (wait <= T) is then the sum of bins ``<= T``, exact for
every whole-second T up to ``FINE_LIMIT_S``. Past that, bins widen (10 s, then 60 s) to keep the
histogram small; thresholds there are exact on multiples of the bin width.
"""

from __future__ import annotations

import math

FINE_LIMIT_S = 600
MEDIUM_LIMIT_S = 3600
MEDIUM_WIDTH_S = 10
COARSE_WIDTH_S = 60
OVERFLOW_S = 7 * 86400

Histogram = dict[int, int]


def bin_upper_s(wait_s: float) -> int:
    """Upper bound (seconds) of the bin holding ``wait_s``; waits <= 0 share bin 0."""
    if wait_s <= 0:
        return 0
    if wait_s <= FINE_LIMIT_S:
        return math.ceil(wait_s)
    if wait_s <= MEDIUM_LIMIT_S:
        return MEDIUM_WIDTH_S * math.ceil(wait_s / MEDIUM_WIDTH_S)
    return min(COARSE_WIDTH_S * math.ceil(wait_s / COARSE_WIDTH_S), OVERFLOW_S)


def add_wait(hist: Histogram, wait_s: float) -> None:
    upper = bin_upper_s(wait_s)
    hist[upper] = hist.get(upper, 0) + 1


def merge_into(target: Histogram, other: Histogram) -> None:
    for upper, count in other.items():
        target[upper] = target.get(upper, 0) + count


EXACT_THRESHOLDS = (
    f"threshold_s must be a whole number of seconds from 0 to {FINE_LIMIT_S}, or a multiple of "
    f"{MEDIUM_WIDTH_S} up to {MEDIUM_LIMIT_S}"
)


def exact_threshold(threshold_s: int) -> bool:
    """Whether ``count_at_most`` is exact for this threshold (it falls on a bin edge)."""
    if 0 <= threshold_s <= FINE_LIMIT_S:
        return True
    return threshold_s <= MEDIUM_LIMIT_S and threshold_s % MEDIUM_WIDTH_S == 0


def count_at_most(hist: Histogram, threshold_s: int) -> int:
    """Waits ``<= threshold_s``."""
    return sum(count for upper, count in hist.items() if upper <= threshold_s)


def to_json(hist: Histogram) -> dict[str, int]:
    return {str(upper): count for upper, count in hist.items()}


def from_json(data: dict[str, int]) -> Histogram:
    return {int(upper): count for upper, count in data.items()}
