"""How stage two cuts a partition's routed messages into runs for the processor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest

from stream.worker import _runs_within


@dataclass(frozen=True)
class Routed:
    value: bytes


@pytest.mark.parametrize(
    ("sizes", "limit", "expected"),
    [
        ([], 10, []),
        ([3, 3, 3], 10, [[3, 3, 3]]),
        ([4, 4, 4], 10, [[4, 4], [4]]),  # the third would pass the limit: a new run
        ([5, 5, 5, 5], 10, [[5, 5], [5, 5]]),  # exactly at the limit stays in the run
        ([30, 2, 2], 10, [[30], [2, 2]]),  # a message over the limit is a run of its own
    ],
)
def test_runs_keep_message_order_and_stay_within_the_limit(
    sizes: list[int], limit: int, expected: list[list[int]]
) -> None:
    events = [Routed(b"x" * size) for size in sizes]
    runs: list[list[Any]] = list(_runs_within(cast(Any, events), limit))
    assert [[len(e.value) for e in run] for run in runs] == expected
    assert [e for run in runs for e in run] == events  # every message once, in offset order
