"""``merged_json``: the worker's merge of a message's deltas into a stored accumulator's JSON.

It must give exactly what ``from_json``, ``merge`` and ``to_json`` give (the same floats, bit for
bit, and the same JSON), while sharing what no delta changes and never mutating its inputs.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import orjson
import pytest

from stream.kpi.accumulator import (
    SERVQUAL_DIMENSIONS,
    KpiAccumulator,
    WaitStats,
    merge_json_into,
    merge_sparse_into,
    merged,
    merged_json,
    merged_sparse_json,
    sparse_json,
)


def random_delta(rng: random.Random) -> KpiAccumulator:
    """A delta as a message makes one: a few events of any kind, often none of some."""
    acc = KpiAccumulator()
    for _ in range(rng.randint(0, 6)):
        kind = rng.randrange(9)
        if kind == 0:
            acc.offered += 1
        elif kind == 1:
            acc.answered += 1
            acc.answered_waits.add(rng.choice([0.0, 0.4, 19.999, 20.0, 700.5, 4000.0]))
        elif kind == 2:
            acc.abandoned += 1
            acc.add_abandoned_wait(rng.uniform(0, 60), 5.0)
        elif kind == 3:
            acc.add_ended(rng.uniform(0, 900), rng.choice([0.0, 12.5]))
        elif kind == 4:
            acc.add_survey(rng.choice(["csat", "nps", "ces", "esat"]), rng.randint(0, 10), None)
        elif kind == 5:
            acc.add_servqual(rng.choice(SERVQUAL_DIMENSIONS), rng.uniform(1, 7), rng.uniform(1, 7))
        elif kind == 6:
            acc.add_first_response(rng.choice(["email", "chat"]), rng.uniform(0, 3600))
        elif kind == 7:
            acc.add_ticket_resolved(rng.choice([None, 1, 3]))
        else:
            acc.add_kb_read(rng.choice([None, 0.1, 30.0]))
    return acc


def reference(stored: dict[str, Any] | None, deltas: list[KpiAccumulator]) -> dict[str, Any]:
    """What the worker wrote before ``merged_json``: decode, merge each delta, encode."""
    acc = KpiAccumulator.from_json(stored) if stored is not None else KpiAccumulator()
    for delta in deltas:
        acc.merge(delta)
    return acc.to_json()


def same_json(a: Any, b: Any) -> bool:
    option = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    return orjson.dumps(a, option=option) == orjson.dumps(b, option=option)


@pytest.mark.parametrize("seed", range(40))
def test_merged_json_equals_decode_merge_encode(seed: int) -> None:
    rng = random.Random(seed)
    stored: dict[str, Any] | None = None
    for _ in range(12):  # one record written by a dozen messages, each with a few deltas
        deltas = [random_delta(rng) for _ in range(rng.randint(0, 3))]
        before = copy.deepcopy(stored)
        expected = reference(stored, deltas)
        got = merged_json(stored, deltas)
        assert same_json(got, expected)  # values and types: 0 stays 0, 0.0 stays 0.0
        assert stored == before  # the stored value is never mutated
        stored = got


@pytest.mark.parametrize("seed", range(40))
def test_merged_sparse_json_is_the_sparse_form_of_merged_json(seed: int) -> None:
    rng = random.Random(seed)
    stored: dict[str, Any] | None = None
    for _ in range(6):  # a minute's first write (nothing stored), then later ones
        delta = random_delta(rng)
        before = copy.deepcopy(stored)
        expected = sparse_json(merged_json(stored, (delta,)))
        got = merged_sparse_json(stored, delta)
        # The same bytes, keys in the same order: the changelog record does not change.
        assert orjson.dumps(got) == orjson.dumps(expected)
        assert stored == before
        stored = got


def test_a_record_without_the_catalogue_fields_gets_them_as_before() -> None:
    old = merged([random_delta(random.Random(7)) for _ in range(5)]).to_json()
    for name in ("servqual", "first_response", "kb_reads", "ticket_contacts_sum"):
        del old[name]
    for deltas in ([], [random_delta(random.Random(8))]):
        expected = reference(old, deltas)
        got = merged_json(old, deltas)
        assert got == expected  # equal values (an absent sum becomes 0.0, decoded it was 0)


def test_records_without_waits_share_one_empty_value_that_nothing_changes() -> None:
    agent_minute = KpiAccumulator()
    agent_minute.answered += 1  # an agent's minute: counts, never waits
    first = merged_json(None, [agent_minute])
    second = merged_json(None, [agent_minute])
    assert first["answered_waits"] is second["answered_waits"]
    queue_minute = KpiAccumulator()
    queue_minute.answered_waits.add(12.0)
    merged_json(first, [queue_minute])  # a wait arrives: a new value, the shared one untouched
    assert first["answered_waits"] == WaitStats().to_json()
    assert merged_json(first, [queue_minute])["answered_waits"]["n"] == 1


def _stored_shapes(rng: random.Random) -> list[dict[str, Any]]:
    """Stored values of every shape a record may have: sparse (what the worker writes), the
    full form of older records, fields at 0 or absent, empty waits and keyed sums."""
    full = merged([random_delta(rng) for _ in range(4)]).to_json()
    sparse = sparse_json(full)
    with_zeros = {**sparse, "offered": 0, "talk_s_sum": 0.0}
    with_empty = {**sparse, "servqual": {}, "abandoned_waits": WaitStats().to_json()}
    without_catalogue = {k: v for k, v in full.items() if k not in ("servqual", "kb_reads")}
    return [full, sparse, with_zeros, with_empty, without_catalogue, {}, {"offered": 2}]


@pytest.mark.parametrize("seed", range(30))
def test_merged_sparse_json_of_any_stored_shape_is_the_long_way(seed: int) -> None:
    rng = random.Random(seed)
    for stored in _stored_shapes(rng):
        for _ in range(4):
            delta = random_delta(rng)
            before = copy.deepcopy(stored)
            expected = sparse_json(merged_json(stored, (delta,)))
            assert orjson.dumps(merged_sparse_json(stored, delta)) == orjson.dumps(expected)
            assert stored == before


def test_a_sum_that_comes_back_to_zero_leaves_the_record_as_the_long_way_does() -> None:
    stored = {"offered": 1, "talk_s_sum": 2.5}
    delta = KpiAccumulator(offered=-1, talk_s_sum=-2.5, answered=1)  # not a real delta: a check
    expected = sparse_json(merged_json(stored, (delta,)))
    assert merged_sparse_json(stored, delta) == expected == {"answered": 1}


@pytest.mark.parametrize("seed", range(30))
def test_merging_in_place_gives_the_value_a_copy_would(seed: int) -> None:
    """What the processor does to a record an earlier message of the same batch wrote."""
    rng = random.Random(seed)
    sparse: dict[str, Any] = merged_sparse_json(None, random_delta(rng))
    full: dict[str, Any] = merged_json(None, [random_delta(rng)])
    for _ in range(8):
        delta = random_delta(rng)
        expected_sparse = merged_sparse_json(sparse, delta)
        nested = copy.deepcopy(sparse)
        in_place = dict(sparse)  # the top level is the processor's own; nested values shared
        assert merge_sparse_into(in_place, delta)
        assert orjson.dumps(in_place) == orjson.dumps(expected_sparse)
        assert sparse == nested  # shared nested values were replaced, never changed
        sparse = in_place
        deltas = [random_delta(rng) for _ in range(rng.randint(0, 3))]
        expected_full = merged_json(full, deltas)
        nested = copy.deepcopy(full)
        in_place = dict(full)
        merge_json_into(in_place, deltas)
        assert orjson.dumps(in_place) == orjson.dumps(expected_full)
        assert full == nested
        full = in_place


def test_merging_in_place_refuses_a_zero_and_changes_nothing() -> None:
    data = {"offered": 1, "talk_s_sum": 2.5}
    assert not merge_sparse_into(data, KpiAccumulator(answered=1, talk_s_sum=-2.5))
    assert data == {"offered": 1, "talk_s_sum": 2.5}
