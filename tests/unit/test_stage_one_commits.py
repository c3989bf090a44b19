"""Stage one's commits: never ahead of an acknowledged send, in order, off the poll's path."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiokafka import TopicPartition

from stream.ingress import InOrderCommits, SentBatch

TP0, TP1 = TopicPartition("events", 0), TopicPartition("events", 1)


class Group:
    """Stands in for the consumer's group coordinator: records commits, answers when told."""

    def __init__(self) -> None:
        self.committed: list[dict[TopicPartition, int]] = []
        self.answer: asyncio.Event = asyncio.Event()
        self.answer.set()
        self.fail_with: Exception | None = None

    def assignment(self) -> set[TopicPartition]:
        return {TP0, TP1}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await self.answer.wait()
        if self.fail_with is not None:
            raise self.fail_with
        self.committed.append(dict(offsets))


def batch(offsets: dict[TopicPartition, int]) -> tuple[SentBatch, asyncio.Future[Any]]:
    ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    return SentBatch([ack], offsets), ack


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_batch_commits_once_acknowledged_and_after_the_one_before() -> None:
    group = Group()
    commits = InOrderCommits(cast(Any, group))
    first, first_ack = batch({TP0: 10})
    second, second_ack = batch({TP0: 20, TP1: 5})
    await commits.push(first)
    assert group.committed == []  # in flight: not acknowledged yet
    first_ack.set_result(None)
    await commits.push(second)
    await settle()
    assert group.committed == [{TP0: 10}]
    second_ack.set_result(None)
    await commits.push(None)  # returns with everything committed
    assert group.committed == [{TP0: 10}, {TP0: 20, TP1: 5}]


async def test_the_next_poll_does_not_wait_for_the_coordinator() -> None:
    group = Group()
    group.answer.clear()  # the coordinator is slow
    commits = InOrderCommits(cast(Any, group))
    sent = [batch({TP0: offset}) for offset in (10, 20, 30)]
    for number, (one, ack) in enumerate(sent):
        ack.set_result(None)
        # Returns though the commit of the batch before is still waiting.
        await asyncio.wait_for(commits.push(one), timeout=1.0)
        assert group.committed == []
        assert number < 2 or commits.in_flight is one
    group.answer.set()
    await commits.push(None)
    # One commit at a time, in order (those acknowledged meanwhile may go as one).
    offsets = [committed[TP0] for committed in group.committed]
    assert offsets[0] == 10 and offsets[-1] == 30 and offsets == sorted(set(offsets))


async def test_nothing_commits_after_a_failed_commit() -> None:
    group = Group()
    group.fail_with = RuntimeError("coordinator gone")
    commits = InOrderCommits(cast(Any, group))
    first, first_ack = batch({TP0: 10})
    second, second_ack = batch({TP0: 20})
    first_ack.set_result(None)
    second_ack.set_result(None)
    await commits.push(first)
    await commits.push(second)  # starts the first commit, which fails
    await settle()
    group.fail_with = None
    with pytest.raises(RuntimeError):
        await commits.push(None)
    with pytest.raises(RuntimeError):
        await commits.push(None)
    assert group.committed == []


async def test_a_failed_send_is_never_committed() -> None:
    group = Group()
    commits = InOrderCommits(cast(Any, group))
    first, first_ack = batch({TP0: 10})
    await commits.push(first)
    first_ack.set_exception(RuntimeError("not acknowledged"))
    with pytest.raises(RuntimeError):
        await commits.push(None)
    await commits.abandon()
    assert group.committed == []
