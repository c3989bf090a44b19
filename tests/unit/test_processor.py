"""Stage two of the worker: one Kafka message's events applied to the record store.

The store here is a plain dict (the worker hands a Faust table). Every event carries ``ts_us``
(epoch microseconds), as the validation stage adds it.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

import pytest

from stream import expiry, records
from stream.expiry import ExpiryRounds
from stream.kpi.accumulator import KpiAccumulator
from stream.kpi.config import CentreConfig, QueueConfig
from stream.kpi.timeutil import BUCKET_US, US_PER_S, parse_ts_us
from stream.processor import MessageOutcome, MessageProcessor, Retention, expire_partition
from stream.records import OFFSET_FIELD, PARTITION_FIELD, key
from tests.streamgen import duplicate_and_reorder, generate_history

T0_US = 1_709_287_200 * US_PER_S  # 2024-03-01T10:00:00Z, a bucket boundary
M = BUCKET_US
HOUR_US = 3600 * US_PER_S
DAY_US = 24 * HOUR_US

Event = dict[str, Any]
Store = dict[str, Any]


def s(seconds: float) -> int:
    return round(seconds * US_PER_S)


def ev(kind: str, event_id: str, at_us: int, **fields: Any) -> Event:
    """An event ``at_us`` after 10:00:00."""
    return {"event_id": event_id, "type": kind, "ts_us": T0_US + at_us, **fields}


def call(
    kind: str, event_id: str, call_id: str, at_us: int, queue: str = "sales", **fields: Any
) -> Event:
    """A call event of ``queue``, ``at_us`` after 10:00:00."""
    return ev(kind, event_id, at_us, queue=queue, call_id=call_id, **fields)


def process(
    store: Any,
    events: list[Event],
    *,
    offset: int,
    now_us: int | None = None,
    partition: int = 0,
    processor: MessageProcessor | None = None,
    centre: CentreConfig | None = None,
) -> MessageOutcome:
    processor = processor or MessageProcessor(centre or CentreConfig())
    if now_us is None:
        now_us = max((e["ts_us"] for e in events), default=T0_US) + s(1)
    return processor.process(
        store, copy.deepcopy(events), offset=offset, partition=partition, now_us=now_us
    )


def family(record_key: str) -> str:
    return records.split_key(record_key)[0]


def read_model(store: Any, *, duplicates: bool = True, offsets: bool = True) -> Store:
    """The records the API reads, optionally without duplicate counters or offset fences."""
    model: Store = {}
    for record_key, value in store.items():
        if family(record_key) not in records.READ_MODEL_FAMILIES:
            continue
        value = copy.deepcopy(value)
        if not duplicates and family(record_key) == records.TOTALS:
            value.pop("duplicates")
        if not offsets:
            value.pop(OFFSET_FIELD, None)
        model[record_key] = value
    return model


def acc(store: Any, *parts: str | int) -> KpiAccumulator:
    return KpiAccumulator.from_json(store[key(*parts)]["acc"])


class LoggingStore(dict[str, Any]):
    """A dict that logs every write in order, with a snapshot of the value written."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.writes: list[tuple[str, str, Any, Any]] = []  # (op, key, value, snapshot)

    def __setitem__(self, record_key: str, value: Any) -> None:
        self.writes.append(("set", record_key, value, copy.deepcopy(value)))
        super().__setitem__(record_key, value)

    def __delitem__(self, record_key: str) -> None:
        self.writes.append(("del", record_key, None, None))
        super().__delitem__(record_key)

    def replay_onto(self, store: Store, count: int) -> None:
        """Apply the first ``count`` writes to ``store``, as a crash would have left them."""
        for op, record_key, _, snapshot in self.writes[:count]:
            if op == "set":
                store[record_key] = copy.deepcopy(snapshot)
            else:
                del store[record_key]


# -- one message, every family -----------------------------------------------------------------
#
#   10:00            10:01            10:02            10:03
#     |----------------|----------------|----------------|
#        o----a                                             c1 sales: answered, wait 20 s
#                   o--------x                              c2 sales: abandoned, wait 30 s
#                       o----------------------------->     c3 support: still waiting
#                                       e  s                c1 ended, survey
#                      ^                                    10:01: c2 waited across it (w)
FIRST_MESSAGE = [
    ev("agent.state", "g1", -s(60), agent_id="a1", state="available", queues=["sales"]),
    call("call.offered", "e1", "c1", s(10)),
    call("call.answered", "e2", "c1", s(30), agent_id="a1"),
    call("call.offered", "e3", "c2", s(50)),
    call("call.abandoned", "e4", "c2", s(80)),
    call("call.offered", "e5", "c3", s(65), queue="support"),
    call("call.ended", "e6", "c1", s(120), agent_id="a1", talk_s=90),
    ev("survey.response", "v1", s(130), queue="sales", call_id="c1", agent_id="a1",
       survey="csat", score=5),
]  # fmt: skip


def test_events_land_in_their_records() -> None:
    store: Store = {}
    outcome = process(store, FIRST_MESSAGE, offset=7, now_us=T0_US + s(140))

    minute_0 = acc(store, "b", "sales", T0_US)
    assert (minute_0.offered, minute_0.answered, minute_0.answered_waits.sum_s) == (2, 1, 20.0)
    minute_1 = acc(store, "b", "sales", T0_US + M)
    assert (minute_1.abandoned, minute_1.abandoned_waits.sum_s) == (1, 30.0)
    minute_2 = acc(store, "b", "sales", T0_US + 2 * M)
    assert (minute_2.ended, minute_2.talk_s_sum, minute_2.csat_satisfied) == (1, 90.0, 1)
    assert acc(store, "b", "support", T0_US + M).offered == 1

    assert acc(store, "ba", "sales", "a1", T0_US).answered == 1
    agent_2 = acc(store, "ba", "sales", "a1", T0_US + 2 * M)
    assert (agent_2.ended, agent_2.csat_responses) == (1, 1)

    assert store[key("w", "sales", T0_US + M)] == {
        "n": 1,
        "oldest": T0_US + s(50),
        OFFSET_FIELD: 7,
        PARTITION_FIELD: 0,
    }
    assert store[key("l", "sales")]["calls"] == {}  # c1 and c2 are done waiting
    assert store[key("l", "support")]["calls"] == {"c3": T0_US + s(65)}

    totals = store[key("t", "q:sales")]
    # All-time totals: the sum of the queue's buckets.
    assert KpiAccumulator.from_json(totals["acc"]) == _merged(store, "sales")
    assert totals["events"] == {
        "call.offered": 2,
        "call.answered": 1,
        "call.abandoned": 1,
        "call.ended": 1,
        "survey.response": 1,
    }
    assert totals["duplicates"] == 0
    assert store[key("t", "a:a1")]["events"] == {"agent.state": 1}

    nine = T0_US - HOUR_US  # a1 changed at 09:59: its 09:00 hour's chunk
    assert store[key("g", "a1", nine)]["changes"] == [[T0_US - s(60), "g1", "available", ["sales"]]]

    assert {k for k in store if family(k) == "c"} == {
        key("c", "sales", "c1"),
        key("c", "sales", "c2"),
        key("c", "support", "c3"),
    }
    assert {k for k in store if family(k) == "d"} == {key("d", "v1")}  # g1: its history dedupes

    for record_key, value in store.items():
        assert value[PARTITION_FIELD] == 0, record_key
        if family(record_key) in records.READ_MODEL_FAMILIES:
            assert value[OFFSET_FIELD] == 7, record_key
    assert (outcome.processed, outcome.duplicates) == (8, 0)
    assert outcome.changed_queues == {"sales", "support"}


def _merged(store: Store, queue: str) -> KpiAccumulator:
    total = KpiAccumulator()
    for record_key in store:
        parts = records.split_key(record_key)
        if parts[0] == "b" and parts[1] == queue:
            total.merge(KpiAccumulator.from_json(store[record_key]["acc"]))
    return total


def test_a_second_message_adds_to_the_records() -> None:
    store: Store = {}
    process(store, FIRST_MESSAGE, offset=1)
    process(
        store,
        [
            call("call.answered", "e7", "c3", s(100), queue="support", agent_id="a1"),
            call("call.offered", "e8", "c4", s(15)),  # late: lands in the 10:00 bucket
        ],
        offset=2,
    )
    assert acc(store, "b", "sales", T0_US).offered == 3
    assert store[key("l", "support")]["calls"] == {}
    # c3 waited 10:01:05 -> 10:01:40: no boundary. c4 is live.
    assert store[key("l", "sales")]["calls"] == {"c4": T0_US + s(15)}
    assert acc(store, "b", "support", T0_US + M).answered_waits.sum_s == 35.0
    assert store[key("b", "sales", T0_US)][OFFSET_FIELD] == 2  # rewritten by the new message
    assert store[key("b", "sales", T0_US + M)][OFFSET_FIELD] == 1  # untouched


# -- duplicates and replays --------------------------------------------------------------------


def test_replaying_a_message_at_the_same_offset_changes_nothing() -> None:
    store: Store = {}
    process(store, FIRST_MESSAGE, offset=5)
    before = read_model(store)
    # A restarted worker (a fresh processor) gets the same message again, a little later.
    outcome = process(store, FIRST_MESSAGE, offset=5, now_us=T0_US + s(200))
    assert read_model(store) == before  # the fence: duplicate counters included
    assert outcome.duplicates == len(FIRST_MESSAGE)


@pytest.mark.parametrize(
    "resent",
    [
        call("call.answered", "e2", "c1", s(30), agent_id="a1"),  # a call event
        call("call.ended", "e6", "c1", s(120), agent_id="a1", talk_s=90),  # counts per id
        ev("survey.response", "v1", s(130), queue="sales", call_id="c1", agent_id="a1",
           survey="csat", score=5),  # a survey (seen mark)
        ev("agent.state", "g1", -s(60), agent_id="a1", state="available", queues=["sales"]),
        call("call.ended", "e6", "c1", s(400), agent_id="a2", talk_s=1),  # same id, new content
        ev("agent.state", "g1", s(300), agent_id="a1", state="paused", queues=[]),  # likewise
    ],
    ids=["call", "ended", "survey", "agent-state", "call-new-content", "agent-new-content"],
)  # fmt: skip
def test_a_true_duplicate_at_a_later_offset_changes_only_the_duplicate_counters(
    resent: Event,
) -> None:
    store: Store = {}
    process(store, FIRST_MESSAGE, offset=1)
    before = read_model(store, offsets=False)
    outcome = process(store, [resent], offset=2, now_us=T0_US + s(500))
    after = read_model(store, offsets=False)

    routing = key("t", records.routing_key(resent))
    assert after[routing]["duplicates"] == before[routing]["duplicates"] + 1
    assert after[routing].get("acc") == before[routing].get("acc")  # a queue's only
    for model in (before, after):
        model[routing].pop("duplicates")
        model[routing].pop("events")  # events seen, duplicates included
    assert after == before
    assert outcome.duplicates == 1


def test_duplicates_within_one_message_count_once() -> None:
    store: Store = {}
    doubled = [e for e in FIRST_MESSAGE for _ in range(2)]
    outcome = process(store, doubled, offset=1)
    once: Store = {}
    process(once, FIRST_MESSAGE, offset=1)
    doubled_model, once_model = read_model(store), read_model(once)
    for model in (doubled_model, once_model):
        for routing in ("q:sales", "q:support", "a:a1"):
            model[key("t", routing)].pop("duplicates")
            model[key("t", routing)].pop("events")  # events seen, duplicates included
    assert doubled_model == once_model
    assert outcome.duplicates == len(FIRST_MESSAGE)
    assert store[key("t", "q:sales")]["duplicates"] == 6


def test_agent_state_resent_after_its_seen_mark_expired_is_a_duplicate() -> None:
    # The agent record keeps the change for 3 days, its seen mark only 2 h: the record still
    # knows the event, so it changes nothing and must count as a duplicate.
    store: Store = {}
    state = ev("agent.state", "g1", 0, agent_id="a1", state="available", queues=["sales"])
    process(store, [state], offset=1, now_us=T0_US)
    later = T0_US + 3 * HOUR_US
    expire_partition(store, 0, 1, later, Retention())
    assert key("d", "g1") not in store
    outcome = process(store, [state], offset=2, now_us=later)
    assert store[key("g", "a1", T0_US)]["changes"] == [[T0_US, "g1", "available", ["sales"]]]
    assert outcome.duplicates == 1
    assert store[key("t", "a:a1")]["duplicates"] == 1


def test_an_agents_history_is_written_an_hour_at_a_time() -> None:
    """A write re-encodes the hour it changed; a late change and its duplicates find their
    original in its hour or the hours either side."""
    store: Store = {}

    def state(event_id: str, at_us: int, name: str) -> Event:
        return ev("agent.state", event_id, at_us, agent_id="a1", state=name, queues=["sales"])

    process(store, [state("g1", -s(30), "available"), state("g2", s(30), "on_call")], offset=1)
    process(store, [state("g3", HOUR_US + s(5), "acw")], offset=2)
    hours = {k: [c[1] for c in v["changes"]] for k, v in store.items() if family(k) == "g"}
    assert hours == {
        key("g", "a1", T0_US - HOUR_US): ["g1"],
        key("g", "a1", T0_US): ["g2"],
        key("g", "a1", T0_US + HOUR_US): ["g3"],
    }
    outcome = process(
        store, [state("g4", s(20), "paused"), state("g2", s(30), "on_call")], offset=3
    )
    assert outcome.duplicates == 1  # g2 again: its own hour knows it
    assert [c[1] for c in store[key("g", "a1", T0_US)]["changes"]] == ["g4", "g2"]
    assert store[key("g", "a1", T0_US)][OFFSET_FIELD] == 3
    assert store[key("g", "a1", T0_US + HOUR_US)][OFFSET_FIELD] == 2  # an hour not touched
    # Re-stamped resends: within the hours either side of the original's, still duplicates;
    # further away, a new change (docs/SEMANTICS.md).
    outcome = process(store, [state("g2", HOUR_US + s(50), "on_call")], offset=4)
    assert outcome.duplicates == 1
    outcome = process(store, [state("g1", 2 * HOUR_US, "available")], offset=5)
    assert outcome.duplicates == 0
    assert [c[1] for c in store[key("g", "a1", T0_US + 2 * HOUR_US)]["changes"]] == ["g1"]


def test_expiry_keeps_an_agents_newest_hour_past_the_retention() -> None:
    """Its state in force at the horizon: an agent logged in since then has no later change."""
    store: Store = {}
    names = ["available", "on_call", "acw", "available", "paused"]
    for hour, name in enumerate(names):
        event = ev("agent.state", f"g{hour}", hour * HOUR_US, agent_id="a1", state=name)
        process(store, [event], offset=hour + 1)
    chunks = [key("g", "a1", T0_US + hour * HOUR_US) for hour in range(len(names))]
    retention = Retention()
    horizon_hours = 2.5  # the horizon half way through the 12:00 hour
    now_us = T0_US + round(horizon_hours * HOUR_US) + int(retention.buckets_s * US_PER_S)
    expire_partition(store, 0, 9, now_us, retention)
    # 10:00 and 11:00 lie wholly past the horizon; 11:00 is the newest of them: kept.
    assert [chunk in store for chunk in chunks] == [False, True, True, True, True]
    expire_partition(store, 0, 9, now_us + 2 * HOUR_US, retention)  # 12:00 and 13:00 gone
    assert [chunk in store for chunk in chunks] == [False, False, False, True, True]


def test_arrival_order_across_messages_does_not_matter() -> None:
    ordered: Store = {}
    for offset, event in enumerate(FIRST_MESSAGE):
        process(ordered, [event], offset=offset, now_us=T0_US + s(200))
    reversed_: Store = {}
    for offset, event in enumerate(reversed(FIRST_MESSAGE)):
        process(reversed_, [event], offset=offset, now_us=T0_US + s(200))
    # Offsets differ (another message wrote each record last); the figures may not.
    assert read_model(reversed_, offsets=False) == read_model(ordered, offsets=False)


def test_each_queue_uses_its_own_config() -> None:
    centre = CentreConfig(queues={"sales": QueueConfig(short_abandon_s=10)})
    store: Store = {}
    events = [
        call("call.offered", "e1", "c1", 0),
        call("call.abandoned", "e2", "c1", s(9)),
        call("call.offered", "e3", "c2", 0, queue="support"),
        call("call.abandoned", "e4", "c2", s(9), queue="support"),
    ]
    process(store, events, offset=1, centre=centre)
    assert acc(store, "b", "sales", T0_US).short_abandoned == 1  # 9 < 10
    assert acc(store, "b", "support", T0_US).short_abandoned == 0  # 9 >= 5


def test_a_value_handed_to_the_store_is_never_changed_afterwards() -> None:
    # Faust serialises changelog values later: a value must not change once written.
    store = LoggingStore()
    process(store, FIRST_MESSAGE, offset=1)
    answer = call("call.answered", "e7", "c3", s(100), queue="support", agent_id="a1")
    process(store, [answer], offset=2)
    pause = ev("agent.state", "g2", s(150), agent_id="a1", state="paused", queues=["sales"])
    process(store, [pause], offset=3)
    process(store, FIRST_MESSAGE, offset=4)  # all duplicates: call states rewritten
    for op, record_key, value, snapshot in store.writes:
        if op == "set":
            assert value == snapshot, record_key


# -- crash anywhere, then replay ---------------------------------------------------------------
#
# The processor writes aggregates first, then call states and seen marks. A crash leaves a
# prefix of a message's writes; the message is then delivered again at the same offset.
#
#   writes of one message:  b b ba w l t t g c c c d d  [expiry]
#   crash after k writes:   |-- applied --|-- lost ----------------|
#   replay:                  fenced (skip) | written again


def scenario_messages() -> list[list[Event]]:
    """A few messages covering every family, with duplicates and a late offer."""
    return [
        FIRST_MESSAGE,
        [
            call("call.answered", "e7", "c3", s(100), queue="support", agent_id="a2"),
            ev("agent.state", "g2", s(100), agent_id="a2", state="on_call", queues=["support"]),
            call("call.answered", "x9", "c9", s(170), agent_id="a1"),  # offer comes later
            call("call.ended", "e6", "c1", s(120), agent_id="a1", talk_s=90),  # duplicate
            ev("survey.response", "v2", s(140), queue="sales", survey="nps", score=9),
        ],
        [
            call("call.offered", "x8", "c9", s(20)),  # the late offer: wait 150 s, 2 boundaries
            call("call.transferred", "x7", "c9", s(200), agent_id="a1", to_queue="support"),
            call("call.offered", "e5", "c3", s(65), queue="support"),  # duplicate
            call("call.wrapup_ended", "e9", "c1", s(150), agent_id="a1", acw_s=20),
            call("call.resolved", "e10", "c1", s(150), resolved=True),
            ev("kb.article_viewed", "k1", s(160), article_id="kb1", read_s=30),
            ev("agent.state", "g3", s(210), agent_id="a1", state="acw", queues=["sales"]),
        ],
        CATALOGUE_MESSAGE,
    ]


# Every record kind the catalogue added: contact facts (offer with caller, answer, resolution),
# tickets (both orders), kb reads with and without a queue, customers (centre records), surveys.
CATALOGUE_MESSAGE = [
    call("call.offered", "n1", "c20", s(300), caller="p1"),
    call("call.answered", "n2", "c20", s(310), agent_id="a1"),
    call("call.resolved", "n3", "c20", s(400), resolved=True),
    ev("ticket.first_response", "t2", s(320), queue="sales", ticket_id="T1", channel="chat"),
    ev("ticket.opened", "t1", s(300), queue="sales", ticket_id="T1", channel="email"),
    ev("ticket.resolved", "t3", s(500), queue="sales", ticket_id="T1", contacts=2),
    ev("ticket.resolved", "t3", s(500), queue="sales", ticket_id="T1", contacts=2),  # duplicate
    ev("kb.article_viewed", "k2", s(330), queue="sales", article_id="kb2", read_s=12.5),
    ev("kb.article_viewed", "k3", s(330), article_id="kb2"),  # no queue: the centre's
    ev("customer.acquired", "u1", s(340), customer_id="cu1"),
    ev("customer.churned", "u2", s(350), customer_id="cu2", queue="sales"),
    ev("survey.response", "v3", s(360), queue="sales", agent_id="a1", survey="esat", score=4),
    ev("survey.response", "v4", s(360), queue="sales", survey="servqual",
       dimension="empathy", expectation=6, perception=5),
]  # fmt: skip


def test_catalogue_events_land_in_their_records() -> None:
    store: Store = {}
    process(store, CATALOGUE_MESSAGE, offset=3, partition=2, now_us=T0_US + s(600))
    minute_5, minute_6, minute_8 = (acc(store, "b", "sales", T0_US + m * M) for m in (5, 6, 8))
    assert (minute_5.tickets_opened, minute_5.first_response) == (1, {"email": [1.0, 20.0]})
    assert (minute_5.kb_reads, minute_5.kb_read_s_sum, minute_5.kb_timed_reads) == (1, 12.5, 1)
    assert (minute_8.tickets_resolved, minute_8.ticket_resolve_s_sum) == (1, 200.0)
    assert (minute_8.ticket_contacts_n, minute_8.ticket_contacts_sum) == (1, 2.0)
    assert (minute_6.esat_responses, minute_6.servqual) == (1, {"empathy": [1.0, 5.0, 6.0]})
    assert acc(store, "ba", "sales", "a1", T0_US + 6 * M).esat_score_sum == 4.0
    centre = acc(store, "x", 2, T0_US + 5 * M)
    assert (centre.kb_reads, centre.customers_acquired, centre.customers_churned) == (1, 1, 1)
    assert acc(store, "xa", 2).customers_acquired == 1
    assert store[key("k", "sales", T0_US + 5 * M)]["off"] == {"c20": [T0_US + s(300), "p1"]}
    assert store[key("k", "sales", T0_US + 5 * M)]["ans"] == {"c20": T0_US + s(310)}
    assert store[key("k", "sales", T0_US + 6 * M)]["res"] == {"c20": [T0_US + s(400), True, None]}
    assert list(store[key("tk", "sales", "T1")]["ids"]) == ["t2", "t1", "t3"]


def generated_messages(seed: int) -> list[list[Event]]:
    """A generated history, delivered at least once and out of order, cut into messages."""
    history = generate_history(seed, start_us=T0_US, duration_s=600, calls=25, agents=3)
    delivered = duplicate_and_reorder(history, seed)
    for event in delivered:
        event["ts_us"] = parse_ts_us(event["ts"])
    rng = random.Random(seed)
    messages: list[list[Event]] = []
    while delivered:
        size = rng.randint(1, 8)
        messages.append(delivered[:size])
        delivered = delivered[size:]
    return messages


def crash_cases(messages: list[list[Event]]) -> Iterator[tuple[Store, int, LoggingStore]]:
    """For each message: the store before it, its offset, and its uninterrupted writes."""
    store: Store = {}
    for offset, message in enumerate(messages):
        logged = LoggingStore(copy.deepcopy(store))
        process(logged, message, offset=offset, now_us=_now(message))
        yield store, offset, logged
        store = copy.deepcopy(dict(logged))


def _now(message: list[Event]) -> int:
    return max(e["ts_us"] for e in message) + s(5)


@pytest.mark.parametrize(
    "messages",
    [
        scenario_messages(),  # hand-written: every family, duplicates, a late offer
        generated_messages(1),  # generated: many calls, duplicates, reordering
        generated_messages(2),
    ],
    ids=["scenario", "generated-1", "generated-2"],
)
def test_a_crash_after_any_prefix_of_writes_then_a_replay_gives_the_same_read_model(
    messages: list[list[Event]],
) -> None:
    for before, offset, uninterrupted in crash_cases(messages):
        message = messages[offset]
        expected = read_model(uninterrupted, duplicates=False)
        for prefix in range(len(uninterrupted.writes) + 1):
            crashed = copy.deepcopy(before)
            uninterrupted.replay_onto(crashed, prefix)
            process(crashed, message, offset=offset, now_us=_now(message))
            assert read_model(crashed, duplicates=False) == expected, (offset, prefix)


def test_a_crash_then_redelivery_from_an_earlier_offset_converges() -> None:
    # Kafka redelivers from the last committed offset, which may be a few messages back.
    messages = generated_messages(3)
    final: Store = {}
    for offset, message in enumerate(messages):
        process(final, message, offset=offset, now_us=_now(message))
    expected = read_model(final, duplicates=False)

    for crash_offset in range(2, len(messages), 3):
        cases = list(crash_cases(messages[: crash_offset + 1]))
        before, _, uninterrupted = cases[crash_offset]
        for prefix in (1, len(uninterrupted.writes) // 2, len(uninterrupted.writes) - 1):
            store = copy.deepcopy(before)
            uninterrupted.replay_onto(store, prefix)
            for offset in range(crash_offset - 2, len(messages)):
                process(store, messages[offset], offset=offset, now_us=_now(messages[offset]))
            assert read_model(store, duplicates=False) == expected, (crash_offset, prefix)


# -- expiry ------------------------------------------------------------------------------------


def _two_partitions() -> Store:
    """The first message on partition 0 (sales) and a copy on partition 1 (other ids)."""
    store: Store = {}
    process(store, FIRST_MESSAGE, offset=1, partition=0, now_us=T0_US + s(140))
    other = [
        {**e, "event_id": f"p1-{e['event_id']}"}
        | ({"queue": "billing"} if "queue" in e else {})
        | ({"agent_id": "b1"} if "agent_id" in e else {})
        for e in FIRST_MESSAGE
    ]
    process(store, other, offset=1, partition=1, now_us=T0_US + s(140))
    return store


@pytest.mark.parametrize(
    ("age_us", "gone"),
    [
        (s(60), set()),  # a minute later: nothing
        (2 * HOUR_US, set()),  # exactly 2 h: finished calls and seen marks still kept
        (2 * HOUR_US + s(1), {"c:finished", "d"}),  # past 2 h: finished calls, seen marks
        (6 * HOUR_US + s(1), {"c:finished", "c:waiting", "d"}),  # past 6 h: waiting call too
        (8 * DAY_US - s(140) - 1, {"c:finished", "c:waiting", "d"}),  # 10:00 bucket: 8 days - 1 µs
        (8 * DAY_US + s(200), {"c:finished", "c:waiting", "d", "b", "ba", "w", "k"}),  # buckets
    ],
)
def test_expiry_deletes_old_state_of_its_own_partition_only(age_us: int, gone: set[str]) -> None:
    store = _two_partitions()
    before = copy.deepcopy(store)
    now_us = T0_US + s(140) + age_us
    deleted = expire_partition(store, 0, 2, now_us, Retention())

    def kind(record_key: str) -> str:
        if family(record_key) != "c":
            return family(record_key)
        finished = records.split_key(record_key)[2] != "c3"  # c3 is still waiting
        return "c:finished" if finished else "c:waiting"

    expected_gone = {k for k, v in before.items() if v[PARTITION_FIELD] == 0 and kind(k) in gone}
    assert set(before) - set(store) == expected_gone
    assert deleted == len(expected_gone)
    for record_key, value in before.items():
        if value[PARTITION_FIELD] == 1:
            assert store[record_key] == value  # the other partition is never touched
        elif family(record_key) in ("t", "g"):
            assert store[record_key] == value  # totals and agents never expire


@pytest.mark.parametrize(
    ("age_us", "still_live"),
    [
        # A call that lost its ending event stops counting after 4 h at read time
        # (stream.kpi.waiting), but stays while older boundaries may still need it.
        (4 * HOUR_US + 1, True),
        (8 * DAY_US, True),  # exactly the bucket retention: kept
        (8 * DAY_US + 1, False),  # past it: no boundary it waited at is kept either
    ],
)
def test_expiry_drops_calls_waiting_past_the_retention_from_the_live_set(
    age_us: int, still_live: bool
) -> None:
    store = _two_partitions()
    offered_us = T0_US + s(65)  # c3, support, partition 0
    expire_partition(store, 0, 2, offered_us + age_us, Retention())
    live = store[key("l", "support")]
    assert ("c3" in live["calls"]) is still_live
    assert live[OFFSET_FIELD] == 1  # the fence is kept: a replay must still skip it
    assert live[PARTITION_FIELD] == 0
    assert store[key("l", "billing")]["calls"] == {"c3": offered_us}  # partition 1 untouched


def test_expiry_walks_a_big_store_less_often(monkeypatch: pytest.MonkeyPatch) -> None:
    """A walk that took 10 s is not repeated within WALK_SPACING x 10 s: expiry stays a small
    share of the worker's time."""
    old: Store = {}
    process(old, FIRST_MESSAGE, offset=1, now_us=T0_US + s(140))
    now_us = T0_US + 9 * DAY_US  # past the 8-day bucket retention of everything in ``old``
    clock = iter([0.0, 10.0, 100.0, 100.0])
    monkeypatch.setattr(expiry.time, "perf_counter", lambda: next(clock))
    rounds = ExpiryRounds(Retention())
    store: Store = {}
    rounds.maybe_expire(store, 0, 1, now_us)  # walks an empty store, "in 10 s"
    store.update(copy.deepcopy(old))
    spaced_us = ExpiryRounds.WALK_SPACING * s(10)
    rounds.maybe_expire(store, 0, 2, now_us + spaced_us - 1)  # due, but too soon for a walk
    assert key("b", "sales", T0_US) in store
    rounds.maybe_expire(store, 0, 3, now_us + spaced_us)
    assert key("b", "sales", T0_US) not in store


def test_expiry_keeps_a_history_written_whole_by_an_older_worker() -> None:
    legacy = key("g", "a1")  # no hour part: the record an older worker wrote
    store: Store = {legacy: {"agent_id": "a1", "changes": [], OFFSET_FIELD: 1, PARTITION_FIELD: 0}}
    assert expire_partition(store, 0, 2, T0_US + 30 * DAY_US, Retention()) == 0
    assert legacy in store


def test_expiry_walks_and_deletes_a_slice_per_batch() -> None:
    """Never a stall: a walk looks at WALK_SLICE records a batch, a partition deletes at most
    DELETE_SLICE a batch; a record deleted meanwhile is skipped, one added waits."""
    minutes = [key("b", "sales", T0_US + minute * M) for minute in range(10)]
    store: Store = {k: {"acc": {}, OFFSET_FIELD: 1, PARTITION_FIELD: 0} for k in minutes}
    rounds = ExpiryRounds(Retention())
    rounds.WALK_SLICE, rounds.DELETE_SLICE = 4, 3
    now_us = T0_US + 9 * DAY_US  # every minute above is past the retention
    deleted = [rounds.maybe_expire(store, 0, 2, now_us)]  # keys 0-3 looked at
    del store[minutes[5]]  # gone before the walk reaches it
    late = key("b", "sales", T0_US - M)
    store[late] = {"acc": {}, OFFSET_FIELD: 1, PARTITION_FIELD: 0}  # after the walk started
    deleted += [rounds.maybe_expire(store, 0, 2, now_us + s(i)) for i in range(1, 6)]
    assert deleted == [0, 0, 3, 3, 3, 0]  # walked in 3 batches, then 9 deleted 3 at a time
    assert set(store) == {late}  # the next walk's
    assert rounds.maybe_expire(store, 1, 2, now_us + s(60)) == 0  # another partition's turn
    assert [rounds.maybe_expire(store, 0, 2, now_us + s(61))] == [1] and not store


def test_process_expires_at_most_once_a_minute_per_partition() -> None:
    old: Store = {}
    process(old, FIRST_MESSAGE, offset=1, now_us=T0_US + s(140))
    processor = MessageProcessor(CentreConfig())
    now_us = T0_US + 9 * DAY_US  # past the 8-day bucket retention
    store: Store = {}
    process(store, [], offset=1, now_us=now_us, processor=processor)  # first: runs, finds nothing
    store.update(copy.deepcopy(old))
    process(store, [], offset=2, now_us=now_us + s(59), processor=processor)  # too soon
    assert key("b", "sales", T0_US) in store
    process(store, [], offset=3, now_us=now_us + s(59), partition=1, processor=processor)
    assert key("b", "sales", T0_US) in store  # partition 1's expiry leaves partition 0 alone
    process(store, [], offset=4, now_us=now_us + s(60), processor=processor)  # a minute on
    assert key("b", "sales", T0_US) not in store
