"""Two workers in one group share the partitions; one is SIGKILLed mid-stream and the other
takes its partitions over, its table partitions recovered, with the exact figures.

Four queues, one on each of four partitions (stage one keys events by queue; the test reads
where their records landed), so whichever partitions a worker is given, it owns queues.

    stream:    |-- chunk 1: counted --|-- chunk 2: one event a message --|-- chunk 3 --|
    worker-1:  |== half the partitions =====================|== all of them (takeover) ==|
    worker-2:  |== the other half ===============X SIGKILL, while chunk 2 is processed
                                                  > session timeout > rebalance > recovery

The final answers of /v1/kpis (every field, every window, three fixed times) and /v1/agents
must equal an uninterrupted single-worker run's, and the reference's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from callpulse.settings import Settings
from stream.records import BUCKET, split_key
from tests.integration.snapshots import (
    GeneratedStream,
    Snapshot,
    assert_same_snapshot,
    assert_snapshot_matches_reference,
    generated_stream,
    matches,
    settled_snapshot,
    snapshot,
)
from tests.integration.stack import Stack, start_stack

pytestmark = pytest.mark.broker

PARTITIONS = 4
# Kafka's default partitioner puts "q:returns" on partition 0 of 4, billing 1, support 2, sales 3.
QUEUES = ("returns", "billing", "support", "sales")
PER_MESSAGE = 20  # events per micro-batch message
PROCESSED = "callpulse_events_processed_total"
SURVIVOR, VICTIM = "worker-1", "worker-2"


@pytest.fixture(scope="module")
def stream() -> GeneratedStream:
    return generated_stream(53, queues=QUEUES)


@pytest.fixture(scope="module")
def uninterrupted(
    broker: str, tmp_path_factory: pytest.TempPathFactory, stream: GeneratedStream
) -> Iterator[Snapshot]:
    """The same stream through one worker that nobody kills."""
    path = tmp_path_factory.mktemp("one-worker")
    stack = start_stack(broker, path, "scale-out-one-worker", partitions=PARTITIONS)
    try:
        stack.produce(stream.messages(0, len(stream.delivered), PER_MESSAGE))
        stack.wait_counted(len(stream.history))
        yield settled_snapshot(stack, stream.ats)
    finally:
        stack.stop()


def _settings(stack: Stack) -> Settings:
    return Settings(app_id=stack.env["CALLPULSE_APP_ID"], partitions=PARTITIONS)


def _owned_routed_partitions(stack: Stack, names: tuple[str, ...]) -> dict[str, set[int]]:
    """Each worker's partitions of the routed topic in stage two's group (Faust's: app id)."""
    settings = _settings(stack)
    return {
        name: stack.assigned_partitions(name, settings.routed_topic, group=settings.app_id)
        for name in names
    }


def _wait_both_workers_own_partitions(stack: Stack) -> dict[str, set[int]]:
    group = _settings(stack).app_id
    owned: dict[str, set[int]] = {}

    def split_between_both() -> bool:
        owned.update(_owned_routed_partitions(stack, (SURVIVOR, VICTIM)))
        first, second = owned[SURVIVOR], owned[VICTIM]
        return (
            bool(first and second)
            and not first & second
            and first | second == set(range(PARTITIONS))
            and len(stack.group_members(group)) == 2
        )

    stack.wait_until(split_between_both, 90, "the partitions split between two workers")
    return owned


def _queue_of_partition(stack: Stack) -> dict[int, str]:
    """Where the worker's queue buckets actually landed: changelog partition -> queue."""
    found: dict[int, set[str]] = {}
    for partition, keys in stack.record_keys(_settings(stack).state_changelog_topic).items():
        for record_key in keys:
            parts = split_key(record_key)
            if parts[0] == BUCKET:
                found.setdefault(partition, set()).add(parts[1])
    assert all(len(queues) == 1 for queues in found.values()), f"shared partitions: {found}"
    return {partition: queues.pop() for partition, queues in found.items()}


def test_survivor_takes_over_a_killed_workers_partitions_with_exact_figures(
    broker: str, tmp_path: Path, stream: GeneratedStream, uninterrupted: Snapshot
) -> None:
    stack = start_stack(broker, tmp_path, "scale-out", worker=False, partitions=PARTITIONS)
    settings = _settings(stack)
    try:
        stack.start_worker(SURVIVOR)
        stack.start_worker(VICTIM)
        owned = _wait_both_workers_own_partitions(stack)

        # Chunk 1, counted: both workers hold state.
        third = len(stream.delivered) // 3
        stack.produce(stream.messages(0, third, PER_MESSAGE))
        stack.wait_counted(len({event["event_id"] for event in stream.delivered[:third]}))
        queue_of = _queue_of_partition(stack)
        assert sorted(queue_of) == list(range(PARTITIONS)), f"one queue a partition: {queue_of}"
        victim_queues = sorted(queue_of[partition] for partition in owned[VICTIM])

        # Chunk 2, one event a message; the victim dies while it is being processed.
        before = stack.metric_sum(PROCESSED)
        stack.produce(stream.messages(third, 2 * third, 1))
        stack.wait_until(lambda: stack.metric_sum(PROCESSED) > before, 60, "chunk 2 under way")
        processed_at_kill = stack.metric_sum(PROCESSED)
        stack.kill(VICTIM)
        killed = time.monotonic()
        changelog_at_kill = stack.end_offsets(settings.state_changelog_topic)

        # Chunk 3 after the kill: its events for the victim's queues wait for the takeover.
        stack.produce(stream.messages(2 * third, len(stream.delivered), PER_MESSAGE))
        stack.wait_counted(len(stream.history))
        counted_after_kill_s = time.monotonic() - killed

        # The survivor alone is in the group, owns every partition, and has written the
        # victim's state partitions since the kill (nobody else is left to write them).
        stack.wait_until(
            lambda: len(stack.group_members(settings.app_id)) == 1, 30, "one member left"
        )
        assert _owned_routed_partitions(stack, (SURVIVOR,))[SURVIVOR] == set(range(PARTITIONS))
        changelog_now = stack.end_offsets(settings.state_changelog_topic)
        for partition in owned[VICTIM]:
            assert changelog_now[partition] > changelog_at_kill[partition], partition

        stack.wait_until(lambda: matches(stack, stream.ats, uninterrupted), 30, "same figures")
        final = snapshot(stack, stream.ats)
        assert_same_snapshot(final, uninterrupted)
        assert assert_snapshot_matches_reference(final, stream.history, QUEUES) == 3 * 4 * 5
        print(
            f"\nscale-out: {PARTITIONS} partitions, owned {owned}; {VICTIM} (queues "
            f"{victim_queues}) killed at {processed_at_kill:.0f} processed; all "
            f"{len(stream.history)} distinct events counted {counted_after_kill_s:.1f} s later; "
            f"changelog ends at kill {changelog_at_kill}, at the end {changelog_now}"
        )
    finally:
        stack.stop()
