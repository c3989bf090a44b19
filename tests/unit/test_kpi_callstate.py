"""The per-call state machine: every call event changes the figures at most once, in any order."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest

from stream.kpi.accumulator import KpiAccumulator
from stream.kpi.callstate import (
    BucketSink,
    CallState,
    apply_call_event,
    call_wait_finished,
    new_call_state,
)
from stream.kpi.config import QueueConfig
from stream.kpi.contacts import ContactFacts
from stream.kpi.timeutil import BUCKET_US, US_PER_S, bucket_start_us

T0_US = 1_709_287_200 * US_PER_S  # 2024-03-01T10:00:00Z, a bucket boundary
CONFIG = QueueConfig()

Event = dict[str, Any]


class RecordingSink:
    """A real ``BucketSink``: one accumulator per bucket, and a log of waiting spans."""

    def __init__(self) -> None:
        self.queue: dict[int, KpiAccumulator] = {}
        self.agents: dict[tuple[str, int], KpiAccumulator] = {}
        self.started: list[tuple[str, int]] = []
        self.ended: list[tuple[str, int, int]] = []
        self.facts: dict[int, ContactFacts] = {}

    def queue_bucket(self, ts_us: int) -> KpiAccumulator:
        return self.queue.setdefault(bucket_start_us(ts_us), KpiAccumulator())

    def agent_bucket(self, agent_id: str, ts_us: int) -> KpiAccumulator:
        return self.agents.setdefault((agent_id, bucket_start_us(ts_us)), KpiAccumulator())

    def contact_facts(self, ts_us: int) -> ContactFacts:
        return self.facts.setdefault(bucket_start_us(ts_us), ContactFacts())

    def waiting_started(self, call_id: str, offered_us: int) -> None:
        self.started.append((call_id, offered_us))

    def waiting_ended(self, call_id: str, offered_us: int, ended_us: int) -> None:
        self.ended.append((call_id, offered_us, ended_us))

    def buckets(self) -> dict[str, dict[Any, Any]]:
        """Bucket contributions as JSON, empty accumulators left out."""
        empty = KpiAccumulator().to_json()
        return {
            "queue": {b: a.to_json() for b, a in self.queue.items() if a.to_json() != empty},
            "agents": {k: a.to_json() for k, a in self.agents.items() if a.to_json() != empty},
        }

    def live(self) -> set[str]:
        """Calls still waiting once every started and ended span is applied."""
        return {c for c, _ in self.started} - {c for c, _, _ in self.ended}


_SINK: BucketSink = RecordingSink()  # a type checker confirms it implements the protocol


def event(kind: str, event_id: str, at_us: int, **fields: Any) -> Event:
    """A validated event of call c1 in queue sales, ``at_us`` after 10:00:00."""
    return {
        "event_id": event_id,
        "type": kind,
        "ts_us": T0_US + at_us,
        "queue": "sales",
        "call_id": "c1",
        **fields,
    }


def s(seconds: float) -> int:
    return round(seconds * US_PER_S)


def run(events: list[Event], config: QueueConfig = CONFIG) -> tuple[CallState, RecordingSink]:
    state, sink = new_call_state("c1"), RecordingSink()
    for e in events:
        apply_call_event(state, e, sink, config)
    return state, sink


def merged_queue(sink: RecordingSink) -> KpiAccumulator:
    total = KpiAccumulator()
    for acc in sink.queue.values():
        total.merge(acc)
    return total


# One whole answered call:
#
#   10:00   10:00:10 offered   10:00:30 answered (wait 20 s)   10:01:00 transferred
#   10:02   10:02:00 ended (talk 80, hold 10)   10:02:30 wrap-up (acw 30), resolved
ANSWERED_CALL = [
    event("call.offered", "e1", s(10)),
    event("call.answered", "e2", s(30), agent_id="a1"),
    event("call.transferred", "e3", s(60), agent_id="a1", to_queue="billing"),
    event("call.ended", "e4", s(120), agent_id="a1", talk_s=80, hold_s=10),
    event("call.wrapup_ended", "e5", s(150), agent_id="a1", acw_s=30),
    event("call.resolved", "e6", s(150), resolved=True, first_contact=True),
]


def _answered_call_buckets() -> dict[str, dict[Any, Any]]:
    minute_0 = KpiAccumulator(offered=1, answered=1)
    minute_0.answered_waits.add(20.0)
    minute_2 = KpiAccumulator(resolutions=1, first_contact_resolutions=1)
    minute_2.add_ended(80.0, 10.0)
    minute_2.add_wrapup(30.0)
    agent_2 = KpiAccumulator()
    agent_2.add_ended(80.0, 10.0)
    agent_2.add_wrapup(30.0)
    return {
        "queue": {
            T0_US: minute_0.to_json(),
            T0_US + BUCKET_US: KpiAccumulator(transferred=1).to_json(),
            T0_US + 2 * BUCKET_US: minute_2.to_json(),
        },
        "agents": {
            ("a1", T0_US): KpiAccumulator(answered=1).to_json(),
            ("a1", T0_US + BUCKET_US): KpiAccumulator(transferred=1).to_json(),
            ("a1", T0_US + 2 * BUCKET_US): agent_2.to_json(),
        },
    }


def test_an_answered_call_lands_in_the_buckets_of_its_event_times() -> None:
    state, sink = run(ANSWERED_CALL)
    assert sink.buckets() == _answered_call_buckets()
    assert sink.started == [("c1", T0_US + s(10))]
    assert sink.ended == [("c1", T0_US + s(10), T0_US + s(30))]
    assert call_wait_finished(state)


@pytest.mark.parametrize("index", range(len(ANSWERED_CALL)))
def test_a_duplicate_changes_nothing(index: int) -> None:
    state, sink = run(ANSWERED_CALL)
    state_before, buckets_before = copy.deepcopy(state), sink.buckets()
    spans_before = (list(sink.started), list(sink.ended))
    assert apply_call_event(state, copy.deepcopy(ANSWERED_CALL[index]), sink, CONFIG) is False
    assert state == state_before
    assert sink.buckets() == buckets_before
    assert (sink.started, sink.ended) == spans_before


def test_a_duplicate_with_other_content_changes_nothing() -> None:
    # "Seen again with the same event_id counts once, whatever its content."
    state, sink = run(ANSWERED_CALL)
    buckets_before = sink.buckets()
    resent = event("call.ended", "e4", s(600), agent_id="a2", talk_s=999)
    assert apply_call_event(state, resent, sink, CONFIG) is False
    assert sink.buckets() == buckets_before


def test_every_arrival_order_gives_the_same_contributions() -> None:
    # 720 orders of the six events: the wait is derived once offered and answered are both known.
    expected = _answered_call_buckets()
    for order in itertools.permutations(ANSWERED_CALL):
        _, sink = run(list(order))
        assert sink.buckets() == expected, [e["type"] for e in order]
        assert sink.ended == [("c1", T0_US + s(10), T0_US + s(30))]
        assert sink.live() == set()


@pytest.mark.parametrize(
    ("order", "started"),
    [
        (("call.offered", "call.answered"), [("c1", T0_US + s(10))]),  # in order: waited live
        (("call.answered", "call.offered"), []),  # answer first: never live, wait span only
    ],
)
def test_answered_before_offered_matches_the_ordered_stream(
    order: tuple[str, str], started: list[tuple[str, int]]
) -> None:
    by_type = {e["type"]: e for e in ANSWERED_CALL}
    state, sink = run([by_type[kind] for kind in order])
    answered = KpiAccumulator(offered=1, answered=1)
    answered.answered_waits.add(20.0)
    assert sink.buckets()["queue"] == {T0_US: answered.to_json()}
    assert sink.started == started
    assert sink.ended == [("c1", T0_US + s(10), T0_US + s(30))]
    assert state["ans_w"] is True


def test_answered_alone_counts_without_a_wait() -> None:
    # The offered event never came: answered counts, but in no wait figure, and nobody waits.
    state, sink = run([event("call.answered", "e2", s(30), agent_id="a1")])
    acc = sink.queue[T0_US]
    assert (acc.answered, acc.answered_waits.count) == (1, 0)
    assert (sink.started, sink.ended) == ([], [])
    assert state["ans_w"] is False


def test_ended_before_answered() -> None:
    # The PBX flushed call.ended before call.answered: both still count, each in its bucket.
    events = [
        event("call.ended", "e4", s(120), agent_id="a1", talk_s=80),
        event("call.offered", "e1", s(10)),
        event("call.answered", "e2", s(30), agent_id="a1"),
    ]
    _, sink = run(events)
    assert sink.queue[T0_US].answered == 1
    assert sink.queue[T0_US].answered_waits.sum_s == 20.0
    ended = sink.queue[T0_US + 2 * BUCKET_US]
    assert (ended.ended, ended.talk_s_sum, ended.hold_s_sum) == (1, 80.0, 0.0)  # hold defaults 0
    assert sink.agents[("a1", T0_US + 2 * BUCKET_US)].ended == 1


@pytest.mark.parametrize(
    ("resend", "field", "expected"),
    [
        # A second event of the same type with a new event_id (a PBX resend):
        (event("call.offered", "x1", s(40)), "offered", 1),  # ignored: first offer wins
        (event("call.answered", "x2", s(50), agent_id="a2"), "answered", 1),  # ignored
        (event("call.resolved", "x6", s(160), resolved=False), "resolutions", 1),  # ignored
        # ...but these count once per event_id (a call transferred twice, ended by two agents):
        (event("call.transferred", "x3", s(70), agent_id="a1"), "transferred", 2),
        (event("call.ended", "x4", s(130), agent_id="a2", talk_s=5), "ended", 2),
        (event("call.wrapup_ended", "x5", s(140), agent_id="a2", acw_s=5), "wrapups", 2),
    ],
)
def test_a_second_event_with_a_new_id(resend: Event, field: str, expected: int) -> None:
    state, sink = run(ANSWERED_CALL)
    assert apply_call_event(state, resend, sink, CONFIG) is True  # a new id is not a duplicate
    total = sum(getattr(acc, field) for acc in sink.queue.values())
    assert total == expected


def test_a_second_offer_does_not_move_the_wait() -> None:
    # The resent offer is 30 s later; the wait still runs from the first one.
    _, sink = run([*ANSWERED_CALL[:1], event("call.offered", "x1", s(25)), *ANSWERED_CALL[1:2]])
    assert sink.queue[T0_US].answered_waits.sum_s == 20.0
    assert sink.ended == [("c1", T0_US + s(10), T0_US + s(30))]


def test_a_second_answer_goes_to_no_agent() -> None:
    _, sink = run([*ANSWERED_CALL[:2], event("call.answered", "x2", s(50), agent_id="a2")])
    assert ("a2", T0_US) not in sink.agents


@pytest.mark.parametrize(
    ("wait_us", "short"),
    [
        (0, True),  # hung up at once
        (4_999_999, True),  # one microsecond under 5 s
        (5_000_000, False),  # exactly 5 s is not short (strictly less)
        (5_000_001, False),  # over 5 s
    ],
)
@pytest.mark.parametrize("wait_given", [True, False], ids=["wait_s-field", "derived"])
def test_short_abandon_boundary(wait_us: int, short: bool, wait_given: bool) -> None:
    offered_at = s(10)
    extra = {"wait_s": wait_us / US_PER_S} if wait_given else {}
    _, sink = run(
        [
            event("call.offered", "e1", offered_at),
            event("call.abandoned", "e2", offered_at + wait_us, **extra),
        ]
    )
    acc = sink.queue[T0_US]
    assert (acc.abandoned, acc.short_abandoned) == (1, 1 if short else 0)
    assert acc.abandoned_waits.sum_s == wait_us / US_PER_S


def test_short_abandon_threshold_comes_from_the_queue_config() -> None:
    events = [event("call.offered", "e1", 0), event("call.abandoned", "e2", s(9))]
    _, default = run(events)
    _, patient = run(events, QueueConfig(short_abandon_s=10))
    assert default.queue[T0_US].short_abandoned == 0
    assert patient.queue[T0_US].short_abandoned == 1


@pytest.mark.parametrize(
    ("wait_us", "within_20"),
    [
        (19_999_999, 1),  # just under the threshold
        (20_000_000, 1),  # exactly the threshold: within
        (20_000_001, 0),  # one microsecond over: not within
    ],
)
def test_derived_wait_is_exact_at_the_threshold(wait_us: int, within_20: int) -> None:
    _, sink = run(
        [
            event("call.offered", "e1", 0),
            event("call.answered", "e2", wait_us, agent_id="a1"),
        ]
    )
    assert sink.queue[T0_US].answered_waits.at_most(20) == within_20


def test_abandoned_before_offered_puts_the_wait_in_the_abandon_bucket() -> None:
    # Offered 10:00:50, abandoned 10:01:20 (arrives first): the wait belongs to 10:01.
    _, sink = run(
        [event("call.abandoned", "e2", s(80)), event("call.offered", "e1", s(50))],
    )
    assert sink.queue[T0_US].offered == 1
    abandoned = sink.queue[T0_US + BUCKET_US]
    assert (abandoned.abandoned, abandoned.abandoned_waits.sum_s) == (1, 30.0)
    assert sink.ended == [("c1", T0_US + s(50), T0_US + s(80))]


def test_the_events_own_wait_wins_over_the_offered_time() -> None:
    # The PBX says 12 s (IVR time excluded); the offered ts would give 20 s.
    _, sink = run(
        [
            event("call.offered", "e1", s(10)),
            event("call.answered", "e2", s(30), agent_id="a1", wait_s=12),
        ]
    )
    assert sink.queue[T0_US].answered_waits.sum_s == 12.0
    # The waiting span still runs from the offer to the answer.
    assert sink.ended == [("c1", T0_US + s(10), T0_US + s(30))]


def test_a_derived_wait_is_never_negative() -> None:
    # Clock skew: answered stamped 2 s before offered.
    _, sink = run(
        [
            event("call.offered", "e1", s(10)),
            event("call.answered", "e2", s(8), agent_id="a1"),
        ]
    )
    assert sink.queue[T0_US].answered_waits.sum_s == 0.0


def test_an_exited_call_ends_its_wait_but_is_in_no_wait_figure() -> None:
    state, sink = run(
        [
            event("call.offered", "e1", s(10)),
            event("call.exited", "e2", s(70), reason="timeout", wait_s=60),
        ]
    )
    acc = merged_queue(sink)
    assert (acc.offered, acc.exited) == (1, 1)
    assert acc.answered_waits.count == acc.abandoned_waits.count == 0
    assert sink.ended == [("c1", T0_US + s(10), T0_US + s(70))]
    assert call_wait_finished(state)


def test_waiting_starts_once_and_ends_once() -> None:
    events = [
        event("call.offered", "e1", s(10)),
        event("call.resolved", "e7", s(15), resolved=False),  # not an outcome: still waiting
        event("call.offered", "x1", s(20)),  # a resend: not a second start
        event("call.abandoned", "e2", s(40)),
        event("call.answered", "e3", s(50), agent_id="a1"),  # odd, but not a second end
    ]
    state, sink = run(events)
    assert sink.started == [("c1", T0_US + s(10))]
    assert sink.ended == [("c1", T0_US + s(10), T0_US + s(40))]
    assert state["wait_done"] is True


def test_a_call_offered_and_nothing_else_is_waiting() -> None:
    state, sink = run([event("call.offered", "e1", s(10))])
    assert sink.live() == {"c1"}
    assert not call_wait_finished(state)


def test_outcomes_known_before_the_offer_end_the_wait_at_the_earliest() -> None:
    events = [
        event("call.answered", "e3", s(50), agent_id="a1"),
        event("call.abandoned", "e2", s(40)),
        event("call.offered", "e1", s(10)),
    ]
    _, sink = run(events)
    assert sink.ended == [("c1", T0_US + s(10), T0_US + s(40))]


@pytest.mark.parametrize(
    ("resolved", "first_contact", "fcr"),
    [
        (True, None, 1),  # resolved, first_contact unknown: first contact
        (True, False, 0),  # resolved on a later contact
        (False, True, 0),  # not resolved
    ],
)
def test_resolution(resolved: bool, first_contact: bool | None, fcr: int) -> None:
    extra = {} if first_contact is None else {"first_contact": first_contact}
    _, sink = run([event("call.resolved", "e6", s(150), resolved=resolved, **extra)])
    acc = sink.queue[T0_US + 2 * BUCKET_US]
    assert (acc.resolutions, acc.first_contact_resolutions) == (1, fcr)


def test_the_state_survives_a_json_round_trip_mid_call() -> None:
    # The state lives in a changelog-backed table: it must be plain JSON, and reloading it
    # between two events must not change what the rest of the call contributes.
    state, sink = run(ANSWERED_CALL[:2])
    reloaded = json.loads(json.dumps(state))
    for e in ANSWERED_CALL[2:]:
        apply_call_event(reloaded, e, sink, CONFIG)
    assert sink.buckets() == _answered_call_buckets()
    assert apply_call_event(reloaded, ANSWERED_CALL[0], sink, CONFIG) is False


@pytest.mark.parametrize(
    ("events", "finished"),
    [
        ([], False),  # nothing yet
        ([event("call.offered", "e1", 0)], False),  # offered only: waiting
        ([event("call.answered", "e2", 0, agent_id="a1")], True),  # answered
        ([event("call.abandoned", "e2", 0)], True),  # abandoned
        ([event("call.exited", "e2", 0, reason="key")], True),  # exited
        ([event("call.ended", "e4", 0, agent_id="a1", talk_s=1)], False),  # ended: not an outcome
    ],
)
def test_call_wait_finished(events: list[Event], finished: bool) -> None:
    state, _ = run(events)
    assert call_wait_finished(state) is finished
