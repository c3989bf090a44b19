"""Several routed messages of one partition applied together (``MessageProcessor.process_batch``).

A batch must write what its messages write one by one, and a crash anywhere in its writes,
then a redelivery cut into other batches (single messages, one longer batch), must give the
same records: the offset fence is per message, whatever the batches.
"""

from __future__ import annotations

import copy
from collections import UserDict
from collections.abc import Sequence
from typing import Any

import pytest

from stream.changelog import RunWrites
from stream.kpi.config import CentreConfig
from stream.processor import MessageProcessor, Retention, _keep_newest
from stream.records import key
from tests.unit.test_processor import (
    T0_US,
    Event,
    LoggingStore,
    Store,
    ev,
    generated_messages,
    read_model,
    s,
    scenario_messages,
)

# Nothing expires: `now` then changes no figure, and the
# stores can be compared whatever clock each run used.
KEEP_ALL = Retention(buckets_s=10**9, call_state_s=10**9, ticket_state_s=10**9)


def _processor() -> MessageProcessor:
    return MessageProcessor(CentreConfig(), KEEP_ALL)


def _now(messages: Sequence[list[Event]]) -> int:
    return max(e["ts_us"] for message in messages for e in message) + s(5)


def _batch(
    store: Store, messages: list[list[Event]], first_offset: int, partition: int = 0
) -> None:
    offsets = range(first_offset, first_offset + len(messages))
    _processor().process_batch(
        store,
        [(offset, copy.deepcopy(m)) for offset, m in zip(offsets, messages, strict=True)],
        partition=partition,
        now_us=_now(messages),
    )


def _cut(count: int, sizes: Sequence[int]) -> list[range]:
    """``range(count)`` cut into consecutive batches of the sizes given, cycled."""
    cuts, start, number = [], 0, 0
    while start < count:
        end = min(count, start + sizes[number % len(sizes)])
        cuts.append(range(start, end))
        start, number = end, number + 1
    return cuts


MESSAGES = {
    "scenario": scenario_messages(),
    "generated-1": generated_messages(1),
    "generated-2": generated_messages(2),
}


@pytest.mark.parametrize("sizes", [(1,), (2,), (3, 1, 5), (1000,)])
@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_a_batch_writes_what_its_messages_write_one_by_one(name: str, sizes: tuple[int]) -> None:
    messages = MESSAGES[name]
    now_us = _now(messages)
    one_by_one: Store = {}
    processor = _processor()
    for offset, message in enumerate(messages):
        processor.process(
            one_by_one, copy.deepcopy(message), offset=offset, partition=3, now_us=now_us
        )
    batched: Store = {}
    processor = _processor()
    for cut in _cut(len(messages), sizes):
        batch = [(offset, copy.deepcopy(messages[offset])) for offset in cut]
        processor.process_batch(batched, batch, partition=3, now_us=now_us)
    assert batched == one_by_one  # every family, fences and states included


def test_a_batch_writes_each_record_once_aggregates_first() -> None:
    messages = MESSAGES["generated-1"][:6]
    logged = LoggingStore()
    _batch(logged, messages, first_offset=0)
    written = [record_key for _, record_key, _, _ in logged.writes]
    assert len(written) == len(set(written))
    state_families = ("c\x1f", "tk\x1f", "d\x1f")
    kinds = [record_key.startswith(state_families) for record_key in written]
    assert kinds == sorted(kinds), "a state or dedupe mark was written before an aggregate"


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_a_crash_anywhere_in_a_batch_then_other_batches_give_the_same_read_model(
    name: str,
) -> None:
    messages = MESSAGES[name]
    cuts = _cut(len(messages), (3, 2, 4))
    expected_store: Store = {}
    for cut in cuts:
        _batch(expected_store, [messages[i] for i in cut], cut.start)
    expected = read_model(expected_store, duplicates=False)

    before: Store = {}
    for cut in cuts:
        logged = LoggingStore(copy.deepcopy(before))
        _batch(logged, [messages[i] for i in cut], cut.start)
        rest = list(range(cut.start, len(messages)))
        for prefix in range(len(logged.writes) + 1):
            for redelivery in (_cut(len(rest), (1,)), _cut(len(rest), (len(rest),))):
                crashed = copy.deepcopy(before)
                logged.replay_onto(crashed, prefix)
                for batch in redelivery:
                    offsets = [rest[i] for i in batch]
                    _batch(crashed, [messages[o] for o in offsets], offsets[0])
                assert read_model(crashed, duplicates=False) == expected, (cut, prefix)
        before = copy.deepcopy(dict(logged))


def _agent_messages() -> list[list[Event]]:
    """One agent in every message: new changes, a change resent in a later message, one out
    of time order, and two older than a day in hours of their own (the first sent again)."""

    def state(event_id: str, at_s: float, name: str) -> Event:
        return ev("agent.state", event_id, s(at_s), agent_id="a1", state=name, queues=["sales"])

    return [
        [state("old", -95_000, "paused"), state("g0", -90_000, "available")],
        [state("g1", 10, "on_call"), state("g2", 20, "acw"), state("g1", 10, "on_call")],
        [state("g3", 15, "paused"), state("old", -95_000, "paused")],
        [state("g2", 20, "acw"), state("g4", 40, "available")],
        [state("g5", 50, "on_call"), state("g3", 15, "paused")],
    ]


@pytest.mark.parametrize("sizes", [(5,), (2, 3), (1, 4)])
def test_an_agent_in_every_message_of_a_batch_keeps_its_history_and_duplicates(
    sizes: tuple[int],
) -> None:
    """The batch keeps each agent's event ids from one message to the next (not rebuilt from
    the record): duplicates and a replay over the fence must not tell."""
    messages = _agent_messages()
    retention = KEEP_ALL
    now_us = _now(messages)
    one_by_one: Store = {}
    processor = MessageProcessor(CentreConfig(), retention)
    for offset, message in enumerate(messages):
        processor.process(
            one_by_one, copy.deepcopy(message), offset=offset, partition=0, now_us=now_us
        )
    # g1, g2, g3 and "old" resent
    assert one_by_one[key("t", "a:a1")]["duplicates"] == 4
    for replay_from in (None, 1):
        batched: Store = {}
        processor = MessageProcessor(CentreConfig(), retention)
        if replay_from is not None:  # the first messages written, then all redelivered
            batch = [(o, copy.deepcopy(messages[o])) for o in range(replay_from + 1)]
            processor.process_batch(batched, batch, partition=0, now_us=now_us)
        for cut in _cut(len(messages), sizes):
            batch = [(offset, copy.deepcopy(messages[offset])) for offset in cut]
            processor.process_batch(batched, batch, partition=0, now_us=now_us)
        assert batched == one_by_one


def test_an_agents_ids_are_kept_between_batches_only_while_the_store_holds_that_record() -> None:
    """A worker's store rolled back to an earlier point (a recovery from the changelog): the
    event ids kept from the later batch must not make its events duplicates."""
    processor = MessageProcessor(CentreConfig(), KEEP_ALL)

    def state(event_id: str, at_s: float) -> Event:
        return ev("agent.state", event_id, s(at_s), agent_id="a1", state="on_call")

    store: Store = {}
    processor.process_batch(store, [(0, [state("g1", 10)])], partition=0, now_us=T0_US)
    earlier = copy.deepcopy(store)
    processor.process_batch(store, [(1, [state("g2", 20)])], partition=0, now_us=T0_US)
    rolled_back = copy.deepcopy(earlier)  # g2 neither in a1's hour nor seen
    outcome = processor.process_batch(
        rolled_back, [(1, [state("g2", 20)])], partition=0, now_us=T0_US
    )
    assert outcome.duplicates == 0
    assert rolled_back == store


def test_kept_id_sets_past_the_limit_lose_the_half_stored_longest_ago() -> None:
    kept = {f"g|a{number}|0": number for number in range(11)}
    kept["g|a3|0"] = kept.pop("g|a3|0")  # a3's chunk written again: stored last
    _keep_newest(kept, 10)
    assert list(kept) == ["g|a7|0", "g|a8|0", "g|a9|0", "g|a10|0", "g|a3|0"]
    _keep_newest(kept, 10)
    assert len(kept) == 5


def test_dedupe_is_exact_whatever_the_kept_sets_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Agents' events and their resends over many batches: with room for 3 kept sets the
    records are those of a processor that keeps them all."""

    def state(agent: int, event_id: str, at_s: float) -> Event:
        return ev("agent.state", event_id, s(at_s), agent_id=f"a{agent}", state="on_call")

    batches = [
        [state(agent, f"e{agent}-{step}", step * 40 + agent) for agent in range(8)]
        + [state(agent, f"e{agent}-{step - 1}", step * 40 + agent) for agent in range(0, 8, 3)]
        for step in range(1, 12)
    ]
    stores: list[Store] = []
    for limit in (10_000, 3):
        monkeypatch.setattr("stream.processor.AGENT_ID_SETS_KEPT", limit)
        processor, store = MessageProcessor(CentreConfig(), KEEP_ALL), {}
        for offset, batch in enumerate(batches):
            processor.process_batch(store, [(offset, batch)], partition=0, now_us=T0_US)
        assert len(processor._agent_ids) <= max(limit, 8)
        stores.append(store)
    assert stores[0] == stores[1]
    assert stores[0][key("t", "a:a0")]["duplicates"] == 10


class DecodingStore(dict[str, Any]):
    """Hands back a fresh copy of each record, as RocksDB decodes one on every read."""

    keeps_values = False

    def get(self, key: str, default: Any = None) -> Any:
        value = super().get(key, default)
        return copy.deepcopy(value)


def test_no_id_sets_are_kept_for_a_store_that_decodes_every_read() -> None:
    """They would never be trusted (a kept set belongs to the very record read) and would hold
    tens of thousands of sets for nothing; within a batch they still serve, and the records are
    those of the memory store."""

    def state(step: int, sent_at: int) -> Event:
        agent = f"a{step % 3}"
        return ev("agent.state", f"g{step}", s(sent_at * 30), agent_id=agent, state="on_call")

    messages = [[state(step, step), state(step - 1, step)] for step in range(1, 9)]  # a resend
    stores: list[Store] = []
    for store in (Store(), DecodingStore()):
        processor = MessageProcessor(CentreConfig(), KEEP_ALL)
        for offset, message in enumerate(messages):
            processor.process_batch(store, [(offset, message)], partition=0, now_us=T0_US)
        assert len(processor._agent_ids) == (0 if isinstance(store, DecodingStore) else 3)
        stores.append(dict(store))
    assert stores[0] == stores[1]


def test_run_writes_say_whether_reads_return_the_values_written() -> None:
    assert RunWrites({}, 0).keeps_values
    assert not RunWrites(UserDict(), 0).keeps_values
