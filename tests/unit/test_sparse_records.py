"""Sparse accumulator records (``sparse_json``): what the worker stores for each minute.

They must decode to the same figures as the full form, merge on as the full form does (bit for
bit), and an old full record must still merge and decode as before.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import orjson
import pytest

from stream.kpi.accumulator import KpiAccumulator, merged_json, sparse_json
from tests.unit.test_accumulator_json_merge import random_delta, reference, same_json


@pytest.mark.parametrize("seed", range(30))
def test_a_chain_of_sparse_writes_holds_the_same_figures_as_full_ones(seed: int) -> None:
    rng = random.Random(seed)
    sparse: dict[str, Any] | None = None
    full: dict[str, Any] | None = None
    for _ in range(12):
        deltas = [random_delta(rng) for _ in range(rng.randint(0, 3))]
        stored = copy.deepcopy(sparse)
        full = reference(full, deltas)
        written = sparse_json(merged_json(sparse, deltas))
        assert sparse == stored  # the stored value is never mutated
        sparse = written
        assert KpiAccumulator.from_json(sparse) == KpiAccumulator.from_json(full)
        # Merged on, the sparse record gives exactly the full record (floats bit for bit).
        assert same_json(merged_json(sparse, []), merged_json(full, []))
        assert orjson.loads(orjson.dumps(sparse)) == sparse  # survives the changelog


def test_sparse_drops_only_empty_parts() -> None:
    rng = random.Random(11)
    for _ in range(300):
        acc = KpiAccumulator()
        for _ in range(rng.randint(0, 4)):
            acc.merge(random_delta(rng))
        full = acc.to_json()
        sparse = sparse_json(full)
        assert set(sparse) <= set(full)
        for name in set(full) - set(sparse):
            value = full[name]
            assert value in (0, {}) or value == {"n": 0, "sum": 0.0, "max": None, "hist": {}}
        assert KpiAccumulator.from_json(sparse) == acc


def test_an_empty_minute_is_an_empty_record_and_a_busy_one_is_small() -> None:
    assert sparse_json(KpiAccumulator().to_json()) == {}
    acc = KpiAccumulator()
    acc.wrapups, acc.acw_s_sum = 2, 10.0
    assert sparse_json(acc.to_json()) == {"wrapups": 2, "acw_s_sum": 10.0}
    assert len(orjson.dumps(sparse_json(acc.to_json()))) * 10 < len(orjson.dumps(acc.to_json()))


def test_an_old_full_record_merges_into_the_same_sparse_record() -> None:
    rng = random.Random(4)
    deltas = [random_delta(rng) for _ in range(6)]
    old = reference(None, deltas[:3])  # written full, before sparse records
    new = sparse_json(merged_json(sparse_json(old), deltas[3:]))
    assert new == sparse_json(merged_json(old, deltas[3:]))
    assert KpiAccumulator.from_json(new) == KpiAccumulator.from_json(reference(old, deltas[3:]))
