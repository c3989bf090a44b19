"""The read model's compact forms (``api.compact``) lose nothing a reader can see.

Two checks: stored minutes decoded from random accumulator JSON equal ``from_json`` field by
field and merge to the same figures; and every reader answer over a day of synthetic traffic is
the same from the compact read model as from one holding the changelog values decoded the plain
way (``KpiAccumulator.from_json``, the agent records as the worker wrote them).
"""

from __future__ import annotations

import copy
import random
from typing import Any

import orjson
import pytest

from api import clock, compact
from api.compact import StoredChanges, joined_agent, stored_accumulator
from api.readmodel import ReadModel
from api.views import ModelReader
from bench.events import Traffic, event_chunks
from stream import records
from stream.kpi.accumulator import KpiAccumulator, merged, sparse_json
from stream.kpi.agents import state_at
from stream.kpi.contacts import CallerIndex, ContactFacts
from tests.unit.apifixtures import CENTRE, T0_US, ChangelogStore, feed, hms, s, scenario_events
from tests.unit.apifixtures import compacted as compacted_log
from tests.unit.test_accumulator_json_merge import random_delta

NOW_US = T0_US + s(3600)


def random_json(rng: random.Random) -> dict[str, Any]:
    acc = merged(random_delta(rng) for _ in range(rng.randint(0, 3)))
    decoded: dict[str, Any] = orjson.loads(orjson.dumps(acc.to_json()))
    return decoded


def test_a_stored_minute_has_every_field_of_the_plain_decoding() -> None:
    rng = random.Random(3)
    for _ in range(500):
        data = random_json(rng)
        plain = KpiAccumulator.from_json(copy.deepcopy(data))
        stored = stored_accumulator(data)
        assert stored == plain
        assert stored_accumulator(sparse_json(data)) == plain  # the worker's records now
        assert orjson.dumps(merged([stored]).to_json()) == orjson.dumps(plain.to_json())


def test_stored_minutes_merge_to_the_same_figures_and_stay_unchanged() -> None:
    rng = random.Random(5)
    for _ in range(100):
        parts = [random_json(rng) for _ in range(rng.randint(1, 8))]
        stored = [stored_accumulator(copy.deepcopy(p)) for p in parts]
        before = [merged([m]).to_json() for m in stored]
        plain = merged(KpiAccumulator.from_json(p) for p in parts)
        assert orjson.dumps(merged(stored).to_json()) == orjson.dumps(plain.to_json())
        after = [merged([m]).to_json() for m in stored]
        assert after == before
    assert compact.StoredMinute.answered_waits.count == 0  # type: ignore[attr-defined]
    assert compact.StoredMinute.answered_waits.hist == {}  # type: ignore[attr-defined]


def test_an_agent_keeps_its_changes_in_order_without_event_ids() -> None:
    value = {
        "agent_id": "a1",
        "changes": [[1, "e1", "available", ["sales", "billing"]], [2, "e2", "on_call", ["sales"]]],
        "_o": 3,
        "_p": 0,
    }
    record = joined_agent("a1", [StoredChanges(value["changes"])])
    assert record == {
        "agent_id": "a1",
        "changes": [(1, None, "available", ("sales", "billing")), (2, None, "on_call", ("sales",))],
    }


def test_stored_changes_read_as_the_plain_list() -> None:
    raw: list[list[Any]] = [
        [1, "e1", "available", ["sales", "billing"]],
        [2, "e2", "on_call", ["sales"]],
        [2, "e3", "acw", []],
        [9, "e4", "available", ["sales", "billing"]],
    ]
    plain = [(ts, None, state, tuple(queues)) for ts, _, state, queues in raw]
    changes = StoredChanges(raw)
    assert list(changes) == plain and len(changes) == 4
    assert [changes[i] for i in range(-4, 4)] == plain + plain
    assert changes[1:3] == plain[1:3] and changes[::-1] == plain[::-1]
    assert changes[0][3] is changes[3][3]  # one queue tuple for every change naming it
    for at_us in range(0, 11):
        assert state_at({"changes": changes}, at_us) == state_at({"changes": plain}, at_us)
    with pytest.raises(IndexError):
        changes[4]


def test_joined_chunks_read_as_one_history() -> None:
    first: list[list[Any]] = [[1, "e1", "available", ["sales"]], [5, "e2", "on_call", ["sales"]]]
    second: list[list[Any]] = [[9, "e3", "paused", ["billing", "sales"]]]
    joined = StoredChanges.joined([StoredChanges(first), StoredChanges([]), StoredChanges(second)])
    assert list(joined) == [(ts, None, st, tuple(qs)) for ts, _, st, qs in first + second]
    assert joined.queues() == {"sales", "billing"}
    assert StoredChanges.joined([]) == [] and StoredChanges([]).queues() == set()


def test_minutes_share_their_histograms_which_refuse_changes() -> None:
    waits = {"n": 1, "sum": 12.5, "max": 12.5, "hist": {"13": 1}}
    first = stored_accumulator({"answered_waits": waits})
    second = stored_accumulator({"answered_waits": dict(waits)})
    assert first.answered_waits.hist is second.answered_waits.hist == {13: 1}
    assert first.answered_waits.max_s is first.answered_waits.sum_s
    with pytest.raises(TypeError):
        first.answered_waits.hist[13] = 2
    assert copy.deepcopy(first.answered_waits.hist) == {13: 1}
    zero = stored_accumulator({"answered_waits": {"n": 1, "sum": 0, "max": 0.0, "hist": {"0": 1}}})
    assert isinstance(zero.answered_waits.max_s, float)  # equal but not the same type: kept


# -- every reader answer, compact against plain ------------------------------------------------


def traffic_events() -> list[dict[str, Any]]:
    """The API scenario plus two hours of synthetic calls, agents and surveys in four queues."""
    spec = Traffic(2500, T0_US - s(3000), T0_US + s(3000), queues=4, agents_per_queue=3)
    synthetic = [event for chunk in event_chunks(spec) for event in chunk]
    return scenario_events() + synthetic


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "now_us", lambda: NOW_US)


@pytest.fixture(scope="module")
def store() -> ChangelogStore:
    from tests.unit.apifixtures import run_worker

    return run_worker(traffic_events(), now_us=NOW_US, per_message=50)


def plain_model(store: ChangelogStore) -> ReadModel:
    """The read model with every value decoded as before the compact forms."""
    model = ReadModel()
    feed(model, compacted_log(store))
    model.callers = CallerIndex()
    hours: dict[str, dict[int, list[Any]]] = {}  # each agent's history chunks
    for record_key, raw in compacted_log(store):
        assert raw is not None  # a compacted store holds no tombstones
        parts = records.split_key(record_key)
        if parts[0] == records.BUCKET:
            model.queues[parts[1]].buckets[int(parts[2])] = KpiAccumulator.from_json(raw["acc"])
        elif parts[0] == records.AGENT_BUCKET:
            per_queue = model.agent_buckets[parts[2]][parts[1]]
            per_queue[int(parts[3])] = KpiAccumulator.from_json(raw["acc"])
        elif parts[0] == records.CENTRE_BUCKET:
            model.centre_buckets[parts[1]][int(parts[2])] = KpiAccumulator.from_json(raw["acc"])
        elif parts[0] == records.AGENT:
            hours.setdefault(parts[1], {})[int(parts[2])] = raw["changes"]
        elif parts[0] == records.CONTACTS:
            facts = ContactFacts.from_json(raw)
            model.queues[parts[1]].contacts[int(parts[2])] = facts
            model.callers.replace_facts(parts[1], None, facts)
    for agent_id, chunks in hours.items():
        changes = [change for hour in sorted(chunks) for change in chunks[hour]]
        model.agents[agent_id] = {"agent_id": agent_id, "changes": changes}
    return model


def answers(model: ReadModel) -> list[Any]:
    reader = ModelReader(model, CENTRE)
    got: list[Any] = []
    for at in ("09:30:00", "10:02:00", "10:10:00", "10:45:30"):
        at_us = hms(at)
        for window in ("5m", "15m", "1h", "today"):
            got.append(reader.centre_kpis(window, at_us, compare=("previous", "last_week")))
            got.append(reader.centre_kpis(window, at_us, threshold_s=20))
            for agent_id in sorted(set(model.agents) | set(model.agent_buckets)):
                got.append(reader.agent_kpis(agent_id, window, at_us))
        got.append(reader.agents(at_us))
        for queue in (None, *model.queues):
            got.append(reader.agent_states(queue, at_us))
    for queue in model.queues:
        got.append(reader.intervals(queue, "15m", hms("09:00:00"), hms("11:00:00")))
    return got


def test_every_answer_is_the_same_from_the_compact_model(store: ChangelogStore) -> None:
    model = ReadModel()
    feed(model, compacted_log(store))
    plain = plain_model(store)
    assert any(isinstance(v, compact.StoredMinute) for q in model.queues.values()
               for v in q.buckets.values())  # fmt: skip
    assert not any(isinstance(v, compact.StoredMinute) for q in plain.queues.values()
                   for v in q.buckets.values())  # fmt: skip
    assert model.callers == plain.callers
    assert sum(len(calls) for calls in plain.callers.calls.values()) > 100
    assert len(model.agents) >= 10 and sum(len(q.buckets) for q in model.queues.values()) > 50
    assert orjson.dumps(answers(model)) == orjson.dumps(answers(plain))


def full_form(record_key: str, value: Any) -> Any:
    """A record as the worker wrote it before sparse records: every field of the accumulator."""
    if value is None or "acc" not in value:
        return value
    return {**value, "acc": merged([KpiAccumulator.from_json(value["acc"])]).to_json()}


def test_old_full_records_and_new_sparse_ones_give_the_same_answers(store: ChangelogStore) -> None:
    sparse, old = ReadModel(), ReadModel()
    feed(sparse, compacted_log(store))
    feed(old, ((k, full_form(k, v)) for k, v in compacted_log(store)))
    minute = next(v for k, v in compacted_log(store) if k.startswith("b" + records.SEP))
    assert minute is not None
    assert len(minute["acc"]) < len(full_form("", minute)["acc"])  # the store's are sparse
    assert orjson.dumps(answers(sparse)) == orjson.dumps(answers(old))


def test_the_served_figures_are_not_all_empty(store: ChangelogStore) -> None:
    """The comparison above means something: the window holds calls, waits and agents."""
    model = ReadModel()
    feed(model, compacted_log(store))
    total = ModelReader(model, CENTRE).centre_kpis("1h", hms("10:45:30"))["total"]
    assert total["offered"] > 100 and total["answered"] > 50
    assert total["repeat_rate"] and total["fcr_rate"] is not None
