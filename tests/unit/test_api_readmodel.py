"""The read model: the worker's changelog records applied one by one, as the API's feed does.

The records come from the real processor run over the ``apifixtures`` scenario; a tombstone is a
record with value ``None`` (a deleted key in the compacted changelog).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from api.readmodel import ReadModel
from api.views import ModelReader
from stream import records
from stream.processor import MessageProcessor
from tests.unit.apifixtures import (
    CENTRE,
    T0_US,
    ChangelogStore,
    compacted,
    feed,
    hms,
    run_worker,
    s,
    scenario_events,
)

AT_1010 = hms("10:10:00")
BUCKET_1001 = hms("10:01:00")


@pytest.fixture(scope="module")
def store() -> ChangelogStore:
    return run_worker(scenario_events(), now_us=T0_US + s(3600))


@pytest.fixture
def model(store: ChangelogStore) -> ReadModel:
    model = ReadModel()
    feed(model, compacted(store))
    return model


def reader(model: ReadModel) -> ModelReader:
    return ModelReader(model, CENTRE)


def sales_15m(model: ReadModel, at_us: int = AT_1010) -> dict[str, Any]:
    return reader(model).queue_kpis("sales", "15m", at_us)


def keys_of(store: ChangelogStore, family: str) -> list[str]:
    return sorted(k for k in store if records.split_key(k)[0] == family)


def snapshot(model: ReadModel) -> dict[str, Any]:
    """Everything a reader can see, comparable with ``==``."""
    return copy.deepcopy(
        {
            "queues": model.queues,
            "agent_buckets": model.agent_buckets,
            "agents": model.agents,
            "routing": model.routing,
            "invalid": model.invalid_by_reason,
            "centre_buckets": model.centre_buckets,
            "centre_totals": model.centre_totals,
            "callers": model.callers,
        }
    )


# -- tombstones ---------------------------------------------------------------------------------


def test_a_bucket_tombstone_removes_the_bucket(model: ReadModel) -> None:
    bucket_key = records.key(records.BUCKET, "sales", BUCKET_1001)
    assert BUCKET_1001 in model.queues["sales"].buckets
    before = sales_15m(model)
    model.apply(bucket_key, None)
    assert BUCKET_1001 not in model.queues["sales"].buckets
    after = sales_15m(model)
    # 10:01 held the offers of c1, c2 and c3 (10:01:58) and both answers
    assert (before["offered"], after["offered"]) == (5, 2)
    assert (before["answered"], after["answered"]) == (2, 0)
    assert after["asa_s"] is None
    assert after["abandoned"] == before["abandoned"]  # 10:02 is untouched


def test_a_tombstone_for_a_record_never_seen_changes_nothing(model: ReadModel) -> None:
    before = sales_15m(model)
    model.apply(records.key(records.BUCKET, "sales", hms("03:00:00")), None)
    assert sales_15m(model) == before


@pytest.mark.parametrize(
    ("family", "parts", "gone"),
    [
        # (record family, key parts, what no longer holds once it is deleted)
        (records.BUCKET, ("sales", BUCKET_1001),
         lambda m: BUCKET_1001 in m.queues["sales"].buckets),
        (records.AGENT_BUCKET, ("sales", "a1", BUCKET_1001),
         lambda m: BUCKET_1001 in m.agent_buckets["a1"]["sales"]),
        (records.BOUNDARY, ("sales", hms("10:02:00")),  # c3 waited across 10:02
         lambda m: hms("10:02:00") in m.queues["sales"].boundaries),
        (records.LIVE, ("sales",), lambda m: bool(m.queues["sales"].live)),
        (records.AGENT, ("a1", hms("10:00:00")),  # a1's 10:00 hour (its 09:59 change stays)
         lambda m: [c[0] for c in m.agents["a1"]["changes"]][1:] == [hms("10:01:10"),
                                                                     hms("10:03:00"),
                                                                     hms("10:03:30")]),
        (records.TOTALS, ("q:sales",), lambda m: "q:sales" in m.routing),
    ],
)  # fmt: skip
def test_tombstones_of_every_read_model_family(
    store: ChangelogStore, model: ReadModel, family: str, parts: tuple[Any, ...], gone: Any
) -> None:
    record_key = records.key(family, *parts)
    assert record_key in store  # the worker wrote it
    assert gone(model)
    model.apply(record_key, None)
    assert not gone(model)


def test_tombstones_show_in_the_figures(model: ReadModel) -> None:
    model.apply(records.key(records.BOUNDARY, "sales", hms("10:02:00")), None)
    model.apply(records.key(records.LIVE, "sales"), None)
    for hour in ("09:00:00", "10:00:00"):
        model.apply(records.key(records.AGENT, "a1", hms(hour)), None)
    at_1002 = reader(model).queue_kpis("sales", "5m", hms("10:02:00"))
    assert (at_1002["calls_waiting"], at_1002["longest_wait_s"]) == (0, None)  # c3 is gone
    kpis = sales_15m(model)
    assert (kpis["calls_waiting"], kpis["longest_wait_s"]) == (0, None)  # c4 is gone
    assert kpis["agents"]["logged_in"] == 2  # a2 and a3; a1 is gone
    assert [a["agent_id"] for a in reader(model).agents(AT_1010)] == ["a2", "a3", "a4"]


# -- families the API does not read -------------------------------------------------------------


@pytest.mark.parametrize("family", [records.CALL, records.SEEN, "zz"])
def test_records_the_api_does_not_read_are_ignored(
    store: ChangelogStore, model: ReadModel, family: str
) -> None:
    worker_only = [(k, v) for k, v in compacted(store) if records.split_key(k)[0] == family]
    assert worker_only or family == "zz"  # the worker does write c and d records
    worker_only += [(records.key(family, "sales", "x"), {"anything": 1}),
                    (records.key(family, "sales", "x"), None)]  # fmt: skip
    version, before = model.version, snapshot(model)
    model.changed.clear()
    feed(model, worker_only)
    assert (model.version, snapshot(model)) == (version, before)
    assert not model.changed.is_set()


def test_the_worker_writes_call_and_dedupe_records(store: ChangelogStore) -> None:
    assert len(keys_of(store, records.CALL)) == 6  # c0..c5
    assert len(keys_of(store, records.SEEN)) == 6  # surveys (agent histories dedupe themselves)


# -- version ------------------------------------------------------------------------------------


def test_version_counts_every_applied_read_model_record(store: ChangelogStore) -> None:
    model = ReadModel()
    assert model.version == 0
    readable = [(k, v) for k, v in compacted(store) if records.split_key(k)[0]
                in records.READ_MODEL_FAMILIES]  # fmt: skip
    feed(model, compacted(store))
    assert model.version == len(readable)
    model.changed.clear()
    model.apply(records.key(records.BUCKET, "sales", BUCKET_1001), None)  # tombstones count
    assert model.version == len(readable) + 1
    assert model.changed.is_set()
    model.apply(readable[0][0], readable[0][1])  # the same record again: a change all the same
    assert model.version == len(readable) + 2


def test_count_invalid_accumulates_by_reason() -> None:
    model = ReadModel()
    for reason in ("missing_field", "wrong_type", "missing_field"):
        model.count_invalid(reason)
    assert model.invalid_by_reason == {"missing_field": 2, "wrong_type": 1}


# -- replaying the changelog --------------------------------------------------------------------


def test_the_full_changelog_and_the_compacted_one_give_the_same_answers(
    store: ChangelogStore, model: ReadModel
) -> None:
    replayed = ReadModel()
    feed(replayed, store.log)  # every write, in order
    assert len(store.log) > len(store)
    assert snapshot(replayed) == snapshot(model)
    for window in ("5m", "15m", "1h", "today"):
        for at in ("10:02:00", "10:05:00", "10:10:00"):
            assert reader(replayed).queue_kpis("sales", window, hms(at)) == reader(
                model
            ).queue_kpis("sales", window, hms(at))


def test_applying_a_record_twice_changes_nothing_but_the_version(
    store: ChangelogStore, model: ReadModel
) -> None:
    before = snapshot(model)
    feed(model, compacted(store))
    assert snapshot(model) == before


def expire_nine_days_later(store: ChangelogStore) -> list[tuple[str, Any]]:
    """Run the worker's retention nine days on; the changelog records it writes."""
    seen = len(store.log)
    nine_days_later = T0_US + s(9 * 86400)  # past the 8-day retention
    MessageProcessor(CENTRE).process(store, [], offset=99, partition=0, now_us=nine_days_later)
    return store.log[seen:]


def test_expired_state_leaves_the_model_through_tombstones() -> None:
    store = run_worker(scenario_events(), now_us=T0_US + s(3600))
    model = ReadModel()
    feed(model, store.log)
    expiry = expire_nine_days_later(store)
    assert [k for k, v in expiry if v is None], "retention deleted nothing"
    feed(model, expiry)
    sales = model.queues["sales"]
    assert (sales.buckets, sales.boundaries, sales.live) == ({}, {}, {})
    kpis = sales_15m(model)
    assert (kpis["offered"], kpis["calls_waiting"]) == (0, 0)  # c4 waited past 4 h: dropped
    assert sales.totals.offered == 6  # the all-time counters stay
    assert reader(model).queue_kpis("sales", "today", AT_1010) == reader(
        _fed(compacted(store))
    ).queue_kpis("sales", "today", AT_1010)


def test_replicas_agree_on_agents_whose_buckets_expired() -> None:
    # a5 answered c0 and never sent a state: once its buckets expire nothing is left of it.
    # A replica that lived through the expiry and one that started after must agree.
    store = run_worker(scenario_events(), now_us=T0_US + s(3600))
    lived_through = ReadModel()
    feed(lived_through, store.log)
    feed(lived_through, expire_nine_days_later(store))
    started_after = _fed(compacted(store))
    assert reader(started_after).agent_kpis("a5", "today", AT_1010) is None
    assert reader(lived_through).agent_kpis("a5", "today", AT_1010) is None


def _fed(changelog: Any) -> ReadModel:
    model = ReadModel()
    feed(model, changelog)
    return model


def test_a_call_waiting_longer_than_the_configured_max_wait_stops_counting() -> None:
    """The reader believes a waiting call as long as the worker's CALLPULSE_MAX_CALL_WAIT_S."""
    model = ReadModel()
    offered_us = T0_US
    model.apply(records.key(records.LIVE, "sales"), {"calls": {"lost": offered_us}})
    ninety_minutes_on = offered_us + s(90 * 60)
    default = ModelReader(model, CENTRE).waiting("sales", ninety_minutes_on)
    one_hour = ModelReader(model, CENTRE, max_call_wait_s=3600).waiting("sales", ninety_minutes_on)
    assert (default.calls_waiting, default.longest_wait_s) == (1, 90 * 60)
    assert (one_hour.calls_waiting, one_hour.longest_wait_s) == (0, None)


def test_a_queue_reads_the_agents_whose_history_names_it() -> None:
    """The per-queue agent index follows every rewrite and tombstone of each history chunk."""
    model = ReadModel()
    nine, ten = hms("09:00:00"), hms("10:00:00")

    def chunk(hour_us: int, *queues: list[str]) -> tuple[str, dict[str, Any]]:
        changes = [[hour_us + i, f"e{hour_us}-{i}", "available", q] for i, q in enumerate(queues)]
        return records.key(records.AGENT, "a1", hour_us), {"agent_id": "a1", "changes": changes}

    model.apply(*chunk(ten, ["sales"], ["sales", "support"]))
    model.apply(*chunk(nine, ["billing"]))
    assert [r["agent_id"] for r in model.agents_of("support")] == ["a1"]
    assert [c[0] for c in model.agents["a1"]["changes"]] == [nine, ten, ten + 1]  # joined in order
    model.apply(*chunk(ten, ["sales"]))  # the support change was rewritten away
    assert model.agents_of("support") == [] and len(model.agents_of("billing")) == 1
    model.apply(records.key(records.AGENT, "a1", nine), None)  # the 09:00 hour aged out
    assert model.agents_of("billing") == [] and len(model.agents_of("sales")) == 1
    assert [c[0] for c in model.agents["a1"]["changes"]] == [ten]
    model.apply(records.key(records.AGENT, "a1", ten), None)
    assert model.agents_of("sales") == [] and model.agents_by_queue == {}
    assert model.agents == {} and model.agent_chunks == {}


def test_a_history_written_whole_by_an_older_worker_reads_before_its_hours() -> None:
    model = ReadModel()
    ten = hms("10:00:00")
    whole = {"agent_id": "a1", "changes": [[hms("08:15:00"), "e1", "available", ["sales"]]]}
    model.apply(records.key(records.AGENT, "a1"), whole)  # ``g|agent``: no hour part
    hour = {"agent_id": "a1", "changes": [[ten + 5, "e2", "on_call", ["support"]]]}
    model.apply(records.key(records.AGENT, "a1", ten), hour)
    assert [c[0] for c in model.agents["a1"]["changes"]] == [hms("08:15:00"), ten + 5]
    assert sorted(model.agents_by_queue) == ["sales", "support"]
    model.apply(records.key(records.AGENT, "a1"), None)
    assert [c[0] for c in model.agents["a1"]["changes"]] == [ten + 5]
