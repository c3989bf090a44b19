"""Properties of the whole write path under at-least-once, out-of-order delivery.

For any generated call history, any duplication and any reordering within a bounded delay,
the events go through what the worker runs (``decode_message``, ``EventValidator``, routing
by ``routing_key``, ``MessageProcessor``) into a dict store, cut into messages of random sizes
on partitions chosen by a random mapping of routing keys. The read-model records must equal
those of the clean, ordered stream, and the KPI objects served from them must equal the
independent reference (``tests/reference.py``) for every window at several times.

    clean:      e1 e2 e3 e4 e5 ...                   one event a message, in event time
    delivered:  e2 e1 e1 e4 e3 e5 e4 ...             each event up to D late, some twice
                |--msg--|--msg-----|--msg--| ...     random message sizes, random partitions
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import clock as api_clock
from api.views import ModelReader
from stream import records
from stream.decode import Rejection
from stream.kpi.timeutil import US_PER_S, parse_ts_us, us_to_rfc3339
from stream.kpi.windows import WINDOWS
from stream.validation import TOO_FAR_IN_FUTURE, TOO_OLD
from tests.figures import assert_same_value
from tests.reference import CATALOGUE_KEYS, KPI_KEYS, reference_kpis
from tests.streamgen import generate_history
from tests.unit.workerpipeline import (
    MAX_FUTURE_US,
    MAX_PAST_US,
    MINUTE_US,
    QUEUES,
    RESENDABLE,
    T0_US,
    VALIDATOR,
    Delivery,
    Event,
    Pipeline,
    Store,
    compared_records,
    run_clean,
    run_delivered,
    served_model,
    strays,
)

# Every field the reference computes: the contract's and KPIS.md's catalogue.
REFERENCE_KEYS = (*KPI_KEYS, *CATALOGUE_KEYS)


@contextmanager
def api_clock_at(now_us: int) -> Iterator[None]:
    """The API's clock (occupancy, provisional FCR and staffing depend on "now"), frozen."""
    with patch.object(api_clock, "now_us", lambda: now_us):
        yield


def assert_same_as_clean(reader: ModelReader, clean: ModelReader, ats_us: Iterable[int]) -> None:
    """The whole answer of every window at each time, and the agents listing."""
    for at_us in ats_us:
        for window in WINDOWS:
            got = reader.centre_kpis(window, at_us)
            assert_same_value(got, clean.centre_kpis(window, at_us), f"{window} at {at_us}")
        assert_same_value(reader.agents(at_us), clean.agents(at_us), f"agents at {at_us}")


def assert_kpis_match_reference(
    reader: ModelReader,
    history: Sequence[Event],
    ats_us: Iterable[int],
    windows: Sequence[str] = WINDOWS,
) -> int:
    """Every queue and the total against the reference; returns how many were compared."""
    compared = 0
    now_us = max(parse_ts_us(e["ts"]) for e in history) + 10 * MINUTE_US
    with api_clock_at(now_us):
        for at_us in ats_us:
            for window in windows:
                compared += _compare_window(reader, history, window, at_us, now_us)
    return compared


def _compare_window(
    reader: ModelReader, history: Sequence[Event], window: str, at_us: int, now_us: int
) -> int:
    centre = reader.centre_kpis(window, at_us)
    served = {item["queue"]: item for item in centre["queues"]}
    compared = 0
    for queue in (*QUEUES, None):
        got = served.get(queue, {}) if queue else centre["total"]
        if not got:
            continue  # a queue that never had an event is not served
        start_us, end_us = parse_ts_us(got["start"]), parse_ts_us(got["end"])
        want = reference_kpis(history, queue=queue, start_us=start_us, end_us=end_us, now_us=now_us)
        for name in REFERENCE_KEYS:
            assert_same_value(got[name], want[name], f"{queue} {window} at {at_us}: {name}")
        compared += 1
    return compared


# -- strategies ----------------------------------------------------------------------------

MAX_DELAY_MS = 30 * 60 * 1000  # the bound on reordering: half an hour late at most


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    return generate_history(
        draw(st.integers(0, 2**32)),
        start_us=T0_US + draw(st.integers(-3, 3)) * MINUTE_US,
        duration_s=draw(st.integers(60, 25 * 60)),
        queues=QUEUES,
        calls=draw(st.integers(1, 40)),
        agents=draw(st.integers(1, 4)),
    )


@st.composite
def deliveries(draw: st.DrawFn, count: int, *, with_strays: bool = False) -> Delivery:
    delay_bound = draw(st.sampled_from([0, 1_000, 30_000, MAX_DELAY_MS]))
    delays = st.integers(0, delay_bound)
    stray = st.tuples(
        st.sampled_from([TOO_OLD, TOO_FAR_IN_FUTURE]), st.integers(1, 10 * 365 * 86400 * US_PER_S)
    )
    return Delivery(
        delays_ms=draw(st.lists(delays, min_size=count, max_size=count)),
        copies=draw(st.lists(st.sampled_from([0, 0, 0, 1, 2]), min_size=count, max_size=count)),
        resends=draw(st.lists(st.booleans(), min_size=count, max_size=count)),
        message_sizes=draw(st.lists(st.integers(1, 50), min_size=1, max_size=5)),
        partitions=draw(st.integers(1, 8)),
        salt=draw(st.integers(0, 1000)),
        strays=draw(st.lists(stray, max_size=3)) if with_strays else (),
    )


@st.composite
def scenarios(draw: st.DrawFn, *, with_strays: bool = False) -> tuple[list[Event], Delivery]:
    history = draw(histories())
    return history, draw(deliveries(len(history), with_strays=with_strays))


def times_to_ask(history: Sequence[Event], draw: st.DrawFn) -> list[int]:
    """The end of the history, and a few times inside it (not on minute boundaries)."""
    last_us = max((parse_ts_us(e["ts"]) for e in history), default=T0_US)
    inside = draw(st.lists(st.integers(T0_US - 4 * MINUTE_US, last_us), max_size=3))
    return [last_us + MINUTE_US, *inside]


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOAK = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The reference costs ~0.1 s a window (its Erlang A integration): fewer, costlier examples.
REFERENCE_FAST = settings(FAST, max_examples=10)
REFERENCE_SOAK = settings(SOAK, max_examples=300)
REFERENCE_WINDOWS = ("15m", "today")


# -- properties ----------------------------------------------------------------------------


def check_records(scenario: tuple[list[Event], Delivery]) -> None:
    history, delivery = scenario
    clean = compared_records(run_clean(history).store)
    delivered = run_delivered(history, delivery)
    assert not delivered.rejections, delivered.rejections[:3]
    assert_same_value(compared_records(delivered.store), clean, "records")


def check_kpis(scenario: tuple[list[Event], Delivery], data: st.DataObject) -> None:
    history, delivery = scenario
    pipeline = run_delivered(history, delivery)
    refused = sorted((str(r.event["event_id"]), r.reason) for r in pipeline.rejections)  # type: ignore[index]
    expected = sorted((e["event_id"], reason) for reason, e in strays(delivery, T0_US))
    assert refused == expected
    ats = times_to_ask(history, data.draw)
    with api_clock_at(max(ats)):
        assert_same_as_clean(
            served_model(pipeline.store), served_model(run_clean(history).store), ats
        )


def check_reference(history: list[Event], data: st.DataObject, windows: Sequence[str]) -> None:
    ats = times_to_ask(history, data.draw)[:2]
    reader = served_model(run_clean(history).store)
    assert assert_kpis_match_reference(reader, history, ats, windows) >= len(ats)


@FAST
@given(scenarios())
def test_delivery_order_duplicates_and_partitions_do_not_change_the_records(
    scenario: tuple[list[Event], Delivery],
) -> None:
    check_records(scenario)


@FAST
@given(scenarios(with_strays=True), st.data())
def test_kpis_of_a_messy_delivery_equal_the_clean_streams(
    scenario: tuple[list[Event], Delivery], data: st.DataObject
) -> None:
    check_kpis(scenario, data)


@REFERENCE_FAST
@given(histories(), st.data())
def test_kpis_of_the_stream_equal_the_reference(history: list[Event], data: st.DataObject) -> None:
    check_reference(history, data, REFERENCE_WINDOWS)


@pytest.mark.slow
@SOAK
@given(scenarios())
def test_soak_records(scenario: tuple[list[Event], Delivery]) -> None:
    check_records(scenario)


@pytest.mark.slow
@SOAK
@given(scenarios(with_strays=True), st.data())
def test_soak_kpis(scenario: tuple[list[Event], Delivery], data: st.DataObject) -> None:
    check_kpis(scenario, data)


@pytest.mark.slow
@REFERENCE_SOAK
@given(histories(), st.data())
def test_soak_reference(history: list[Event], data: st.DataObject) -> None:
    check_reference(history, data, WINDOWS)


# -- tolerance: far in the past or the future is refused with the reason ----------------------


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(
        ["call.offered", "call.answered", "agent.state", "survey.response", "call.ended"]
    ),
    beyond_us=st.integers(1, 100 * 365 * 86400 * US_PER_S),
    side=st.sampled_from([TOO_OLD, TOO_FAR_IN_FUTURE]),
    now_us=st.integers(T0_US - 86400 * US_PER_S, T0_US + 86400 * US_PER_S),
)
def test_beyond_the_tolerance_is_refused_with_its_reason(
    kind: str, beyond_us: int, side: str, now_us: int
) -> None:
    ts_us = (
        now_us - MAX_PAST_US - beyond_us if side == TOO_OLD else now_us + MAX_FUTURE_US + beyond_us
    )
    event = _valid_event(kind, ts_us)
    result = VALIDATOR.validate(event, now_us=now_us)
    assert isinstance(result, Rejection)
    assert result.reason == side
    dlq = result.to_dlq(source="worker", received_at="2024-03-01T10:00:00Z")
    assert dlq["reason"] == side
    assert dlq["event"] == event


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["call.offered", "agent.state", "call.ended"]),
    before_us=st.integers(-MAX_FUTURE_US, MAX_PAST_US),
    now_us=st.integers(T0_US - 86400 * US_PER_S, T0_US + 86400 * US_PER_S),
)
def test_within_the_tolerance_is_accepted(kind: str, before_us: int, now_us: int) -> None:
    # Both bounds are inclusive: exactly the retention old, or exactly max_future_s ahead.
    result = VALIDATOR.validate(_valid_event(kind, now_us - before_us), now_us=now_us)
    assert not isinstance(result, Rejection), result
    assert result["ts_us"] == now_us - before_us


def _valid_event(kind: str, ts_us: int) -> Event:
    ts = us_to_rfc3339(ts_us) if ts_us % 2 else ts_us / US_PER_S  # both forms
    base: Event = {"event_id": "x1", "type": kind, "ts": ts}
    extra: dict[str, Event] = {
        "call.offered": {"queue": "sales", "call_id": "c1"},
        "call.answered": {"queue": "sales", "call_id": "c1", "agent_id": "a1"},
        "call.ended": {"queue": "sales", "call_id": "c1", "agent_id": "a1", "talk_s": 30},
        "agent.state": {"agent_id": "a1", "state": "available", "queues": ["sales"]},
        "survey.response": {"queue": "sales", "call_id": "c1", "survey": "csat", "score": 4},
    }
    return base | extra[kind]


# -- late events: they land in the bucket of their own time, up to the retention --------------

HOUR_US = 3600 * US_PER_S
DAY_US = 24 * HOUR_US


def _late_call(call_id: str, offered_us: int, wait_us: int) -> list[Event]:
    base = {"queue": "sales", "call_id": call_id}
    offered = {"event_id": f"{call_id}-o", "type": "call.offered", **base}
    answered = {"event_id": f"{call_id}-a", "type": "call.answered", "agent_id": "a1", **base}
    return [
        {**offered, "ts": us_to_rfc3339(offered_us)},
        {**answered, "ts": us_to_rfc3339(offered_us + wait_us)},
    ]


def _without_waiting_calls(history: Sequence[Event]) -> list[Event]:
    """The history minus calls that never leave the queue (see the next test for those)."""
    ended = {e["call_id"] for e in history if e["type"] in RESENDABLE[1:4]}
    return [e for e in history if "call_id" not in e or e["call_id"] in ended]


@pytest.mark.parametrize(
    ("age_us", "split"),
    [
        (0, False),  # arrives with the next message: the baseline
        (90 * 60 * US_PER_S, False),  # after every window ending near its time has passed
        (5 * HOUR_US, False),  # past the 4 h a waiting call is kept in the live set
        (2 * DAY_US, False),  # two days late, well inside the retention (8 days)
        (MAX_PAST_US - 60 * US_PER_S, False),  # a minute short of the retention
        (MAX_PAST_US, False),  # exactly the retention old: accepted, so it counts (its minute too)
        (3 * HOUR_US, True),  # only the answer is late: the offer came on time
    ],
)
def test_late_events_land_in_their_own_bucket(age_us: int, split: bool) -> None:
    history = _without_waiting_calls(
        generate_history(5, start_us=T0_US, duration_s=600, queues=QUEUES, calls=20)
    )
    offered_us = T0_US + 125 * US_PER_S
    late = _late_call("late", offered_us, 21 * US_PER_S)
    on_time = sorted(history + late[:1] if split else history, key=lambda e: parse_ts_us(e["ts"]))
    pipeline = Pipeline(partitions=2)
    for event in on_time:
        pipeline.deliver([event], now_us=parse_ts_us(event["ts"]))
    arrival_us = max(T0_US + 600 * US_PER_S, offered_us + age_us)  # the offer's age decides
    pipeline.deliver(late[1:] if split else late, now_us=arrival_us)
    assert not pipeline.rejections
    # The same events all on time, every minute still inside the retention at the arrival
    # (older ones go when their partition next expires: not this test's business).
    clean = run_clean(sorted([*history, *late], key=lambda e: parse_ts_us(e["ts"])))
    horizon_us = arrival_us - MAX_PAST_US

    def kept(store: Store) -> Store:
        return {
            k: v
            for k, v in compared_records(store).items()
            if (_bucket_us(k) or 0) + MINUTE_US > horizon_us  # a minute goes once wholly past
        }

    got = kept(pipeline.store)
    assert_same_value(got, kept(clean.store), "minutes")
    late_bucket = records.key(records.BUCKET, "sales", T0_US + 2 * MINUTE_US)
    assert got[late_bucket]["acc"]["answered"] >= 1
    if horizon_us <= T0_US - 5 * MINUTE_US:  # nothing expired yet: every figure, every window
        ats = [T0_US + m * MINUTE_US + 7 * US_PER_S for m in (2, 3, 6, 11)]
        reader = served_model(pipeline.store)
        assert assert_kpis_match_reference(reader, [*history, *late], ats) == len(ats) * 5 * 3


def _bucket_us(record_key: str) -> int | None:
    """The minute a per-minute record is for; None for records that are not per minute."""
    parts = records.split_key(record_key)
    if parts[0] in records.BUCKETED_FAMILIES:
        return int(parts[-1])
    return None


# Fixed: a lost call stays in the live set until the bucket retention; the read side stops
# counting it 4 h after its offer (stream.kpi.waiting).
def test_a_call_dropped_from_the_live_set_still_waited_in_past_windows() -> None:
    offered = {"event_id": "o1", "type": "call.offered", "ts": us_to_rfc3339(T0_US + 5 * US_PER_S),
               "queue": "sales", "call_id": "lost"}  # fmt: skip
    later = _late_call("next", T0_US + 5 * HOUR_US, US_PER_S)  # any traffic 5 h later
    pipeline = Pipeline()
    pipeline.deliver([offered], now_us=T0_US + 5 * US_PER_S)
    pipeline.deliver(later, now_us=T0_US + 5 * HOUR_US + 2 * US_PER_S)
    at_us = T0_US + 3 * MINUTE_US  # the call had waited 2 min 55 s: SEMANTICS counts it
    assert reference_kpis([offered, *later], queue="sales", start_us=at_us - 300 * US_PER_S,
                          end_us=at_us)["calls_waiting"] == 1  # fmt: skip
    assert served_model(pipeline.store).queue_kpis("sales", "5m", at_us)["calls_waiting"] == 1
