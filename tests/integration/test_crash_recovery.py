"""A worker killed with SIGKILL mid-stream, then restarted, ends with the exact figures.

The same generated stream (duplicated, reordered) is delivered once without interruption and
then, per kill point, with the worker SIGKILLed part-way and a new worker process started on
the same settings: no shutdown, no final offset commit, the state table recovered from its
changelog and the uncommitted messages replayed. The final answers of /v1/kpis (every field,
every window, three fixed times) and /v1/agents must equal the uninterrupted run's, and the
reference's.

    chunks:  |----- 1 -----|----- 2 -----|----- 3 -----|
    kill A:                ^ right after producing chunk 1 (nothing, some or all of it read)
    kill B:                |  big chunk ~~~^~~~          mid-way through 2 + redeliveries
    kill C:                              ^ after chunks 1 and 2 were counted
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from callpulse.settings import Settings
from tests.integration.snapshots import (
    GeneratedStream,
    Snapshot,
    assert_same_snapshot,
    assert_snapshot_matches_reference,
    generated_stream,
    matches,
    snapshot,
)
from tests.integration.stack import Stack, start_stack

pytestmark = pytest.mark.broker

PER_MESSAGE = 20  # events per micro-batch message
PROCESSED = "callpulse_events_processed_total"
# The big chunk re-sends the whole stream this many times, one event a message: many of stage
# one's batches (CALLPULSE_INGEST_BATCH_MAX), so the kill lands between two of them.
REDELIVERIES = 10


@dataclass(frozen=True)
class Kill:
    produced_until: int  # delivered[:produced_until] was produced before the kill
    processed_at_kill: float  # callpulse_events_processed_total when the worker died
    redelivered: int = 0  # events sent again on purpose (kill B), 0 otherwise


@pytest.fixture(scope="module")
def stream() -> GeneratedStream:
    return generated_stream(31)


@pytest.fixture(scope="module")
def uninterrupted(
    broker: str, tmp_path_factory: pytest.TempPathFactory, stream: GeneratedStream
) -> Iterator[Snapshot]:
    stack = start_stack(broker, tmp_path_factory.mktemp("uninterrupted"), "uninterrupted")
    try:
        stack.produce(stream.messages(0, len(stream.delivered), PER_MESSAGE))
        stack.wait_counted(len(stream.history))
        taken = _settled_snapshot(stack, stream)
        assert assert_snapshot_matches_reference(taken, stream.history) == 3 * 4 * 3
        yield taken
    finally:
        stack.stop()


def _settled_snapshot(stack: Stack, stream: GeneratedStream) -> Snapshot:
    """Once counted, the last records may still be on their way: two equal reads in a row."""
    previous = snapshot(stack, stream.ats)
    stack.wait_until(
        lambda: matches(stack, stream.ats, previous) or _replace(previous, stack, stream),
        30,
        "a settled snapshot",
    )
    return previous


def _replace(previous: Snapshot, stack: Stack, stream: GeneratedStream) -> bool:
    previous.clear()
    previous.update(snapshot(stack, stream.ats))
    time.sleep(0.5)
    return False


def _thirds(stream: GeneratedStream) -> tuple[int, int]:
    third = len(stream.delivered) // 3
    return third, 2 * third


def kill_right_after_producing_chunk_1(stack: Stack, stream: GeneratedStream) -> Kill:
    first, _ = _thirds(stream)
    stack.produce(stream.messages(0, first, PER_MESSAGE))
    processed = stack.metric_sum(PROCESSED)
    stack.kill("worker")
    return Kill(first, processed)


def kill_mid_way_through_a_big_chunk(stack: Stack, stream: GeneratedStream) -> Kill:
    first, second = _thirds(stream)
    chunk_1 = stream.messages(0, first, PER_MESSAGE)
    stack.produce(chunk_1)
    stack.wait_processed(first)
    # Chunk 2 and redeliveries of everything, one event a message: many of stage one's batches.
    big = (
        stream.messages(first, second, 1)
        + stream.messages(0, len(stream.delivered), 1) * REDELIVERIES
    )
    group = Settings(app_id=stack.env["CALLPULSE_APP_ID"]).validate_group
    partitions = range(int(stack.env["CALLPULSE_PARTITIONS"]))
    inputs = [TopicPartition(stack.events_topic, p) for p in partitions]
    chunk_1_read = asyncio.run(_stage_one_committed(stack.bootstrap, group, inputs, len(chunk_1)))
    # Paused while the chunk is written: the worker keeps up with this producer, so the chunk
    # must be all in Kafka before it starts for the kill to find it half done.
    paused = stack.processes["worker"].pid
    os.kill(paused, signal.SIGSTOP)
    try:
        stack.produce(big)
    finally:
        os.kill(paused, signal.SIGCONT)
    # Killed as soon as stage one commits a first batch of the chunk: the rest is still to do.
    read = asyncio.run(_stage_one_committed(stack.bootstrap, group, inputs, chunk_1_read + 1))
    stack.kill("worker")
    assert read < chunk_1_read + len(big), "the big chunk was already done: not a mid-way kill"
    return Kill(second, stack.metric_sum(PROCESSED), redelivered=len(big) - (second - first))


async def _stage_one_committed(
    bootstrap: str, group: str, partitions: list[TopicPartition], at_least: int
) -> int:
    """Messages stage one's group has committed, summed over the input partitions, once it is
    ``at_least``; polled often, so a kill that follows lands right after that commit."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
            read = sum(max(meta.offset, 0) for meta in offsets.values())
            if read >= at_least:
                return read
            await asyncio.sleep(0.01)
    finally:
        await admin.close()
    raise AssertionError(f"{group} did not commit {at_least} messages")


def kill_after_two_chunks_were_counted(stack: Stack, stream: GeneratedStream) -> Kill:
    _, second = _thirds(stream)
    stack.produce(stream.messages(0, second, PER_MESSAGE))
    distinct = len({event["event_id"] for event in stream.delivered[:second]})
    stack.wait_counted(distinct)
    processed = stack.metric_sum(PROCESSED)
    stack.kill("worker")
    return Kill(second, processed)


@pytest.mark.parametrize(
    "kill_worker",
    [
        # the input is in Kafka, the worker may have read none, some or all of it
        kill_right_after_producing_chunk_1,
        # processing single-event messages, state and offsets half written
        kill_mid_way_through_a_big_chunk,
        # everything so far counted: recovery from the changelog, replay of uncommitted offsets
        kill_after_two_chunks_were_counted,
    ],
    ids=["after-producing-chunk-1", "mid-big-chunk", "after-chunk-2-counted"],
)
def test_sigkilled_worker_recovers_the_exact_figures(
    broker: str,
    tmp_path: Path,
    stream: GeneratedStream,
    uninterrupted: Snapshot,
    kill_worker: Callable[[Stack, GeneratedStream], Kill],
) -> None:
    stack = start_stack(broker, tmp_path, f"crash-{kill_worker.__name__}")
    try:
        kill = kill_worker(stack, stream)
        restarted = time.monotonic()
        stack.start_process("worker", "worker")  # a new process, the same settings
        stack.produce(stream.messages(kill.produced_until, len(stream.delivered), PER_MESSAGE))
        stack.wait_counted(len(stream.history))
        recovered_s = time.monotonic() - restarted
        stack.wait_until(lambda: matches(stack, stream.ats, uninterrupted), 30, "same figures")
        final = snapshot(stack, stream.ats)
        assert_same_snapshot(final, uninterrupted)
        assert assert_snapshot_matches_reference(final, stream.history) == 3 * 4 * 3
        processed = stack.metric_sum(PROCESSED)
        duplicates = stack.metric_sum("callpulse_events_duplicate_total")
        print(
            f"\ncrash-recovery {kill_worker.__name__}: distinct {len(stream.history)}, "
            f"delivered {len(stream.delivered) + kill.redelivered}, processed at kill "
            f"{kill.processed_at_kill:.0f}, processed {processed:.0f}, duplicates "
            f"{duplicates:.0f}, counted again after restart in {recovered_s:.1f} s"
        )
    finally:
        stack.stop()


def test_figures_are_the_same_with_the_worker_heap_left_to_cpythons_collector(
    broker: str,
    tmp_path: Path,
    stream: GeneratedStream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CALLPULSE_WORKER_GC_FREEZE=false (the heap not frozen after each batch, as before it
    was the default) changes no figure: all of them as the reference computes them."""
    monkeypatch.setenv("CALLPULSE_WORKER_GC_FREEZE", "false")
    stack = start_stack(broker, tmp_path, "unfrozen-heap")
    try:
        stack.produce(stream.messages(0, len(stream.delivered), PER_MESSAGE))
        stack.wait_counted(len(stream.history))
        taken = _settled_snapshot(stack, stream)
        assert assert_snapshot_matches_reference(taken, stream.history) == 3 * 4 * 3
    finally:
        stack.stop()
