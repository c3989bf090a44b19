"""Comparing served figures: equal, except float sums added in another order.

callpulse adds waits, talk times and scores as floats, so the same events in another order
(another batching, a replay after a crash) may differ in the last bits of a sum; everything
else, counts included, must be identical.
"""

from __future__ import annotations

import math
from typing import Any

REL_TOL = 1e-12
ABS_TOL = 1e-9


def assert_same_value(got: Any, want: Any, where: str) -> None:
    """Recursively equal; floats within ``REL_TOL``; the first difference named by its path."""
    if isinstance(want, float) and isinstance(got, float):
        assert math.isclose(got, want, rel_tol=REL_TOL, abs_tol=ABS_TOL), (
            f"{where}: {got} != {want}"
        )
    elif isinstance(want, dict) and isinstance(got, dict):
        assert got.keys() == want.keys(), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for name in want:
            assert_same_value(got[name], want[name], f"{where}.{name}")
    elif isinstance(want, list) and isinstance(got, list):
        assert len(got) == len(want), f"{where}: {got} != {want}"
        for index, (one, other) in enumerate(zip(got, want, strict=True)):
            assert_same_value(one, other, f"{where}[{index}]")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"
