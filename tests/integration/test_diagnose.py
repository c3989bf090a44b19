"""``kill -USR2`` on a worker writes where its consumers stand (``stream.diagnose``): checked,
once the worker has read everything, against stage one's commits and the routed topic as a
reader finds it; and stage two's own commits reach the routed ends once it is idle."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from callpulse.settings import Settings
from tests.integration.snapshots import generated_stream
from tests.integration.stack import Stack, start_stack

pytestmark = pytest.mark.broker

PARTITIONS = 3


def _reported(topic: str, text: str) -> dict[int, str]:
    """Each partition of ``topic`` in a consumer-state report: the rest of its line."""
    pattern = re.compile(rf"^  {re.escape(topic)}\[(\d+)\]\s*(.*)$", re.MULTILINE)
    return {int(partition): rest for partition, rest in pattern.findall(text)}


def _positions(lines: dict[int, str]) -> dict[int, int]:
    return {
        partition: int(re.findall(r"position (\d+)", line)[0]) for partition, line in lines.items()
    }


def _ends(stack: Stack, topic: str, partitions: int) -> dict[int, int]:
    """One past the last offset of each partition of ``topic``, as a reader of it finds them."""
    ends = dict.fromkeys(range(partitions), 0)
    for record in stack.read_all(topic):
        ends[record.partition] = max(ends[record.partition], record.offset + 1)
    return ends


def test_sigusr2_reports_each_consumers_group_and_positions(
    broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small stage-one polls: stage two gets many batches within one commit interval, so only
    # a commit made once it is idle puts the last of them on record.
    monkeypatch.setenv("CALLPULSE_INGEST_BATCH_MAX", "10")
    stack = start_stack(broker, tmp_path, "diagnose", partitions=PARTITIONS)
    settings = Settings(app_id=stack.env["CALLPULSE_APP_ID"], partitions=PARTITIONS)
    stream = generated_stream(7, queues=("sales", "support", "billing"))
    try:
        stack.produce(stream.messages(0, len(stream.delivered), 10))
        stack.wait_counted(len(stream.history))
        start = len(stack.log("worker"))
        os.kill(stack.processes["worker"].pid, signal.SIGUSR2)
        stack.wait_until(lambda: "stage one:" in stack.log("worker")[start:], 10, "a report")
        report = stack.log("worker")[start:]

        assert f"group {settings.app_id}: generation" in report
        assert f"group {settings.validate_group}: generation" in report
        assert "flow active True" in report
        # Everything was read. The broker's end offsets are not exact for topics written in
        # batches (callpulse.broker), so: stage one is where it committed, stage two one past
        # each routed partition's last record, as a consumer of its own reads them.
        stage_one = _reported(stack.events_topic, report)
        committed = stack.committed_offsets(
            settings.validate_group, stack.events_topic, range(PARTITIONS)
        )
        assert _positions(stage_one) == committed
        stage_two = _reported(settings.routed_topic, report)
        routed_ends = _ends(stack, settings.routed_topic, PARTITIONS)
        assert _positions(stage_two) == routed_ends
        assert all(line.startswith("active:") for line in stage_two.values()), stage_two
        # Idle, stage two has committed everything it processed (stream.routed), which is
        # where a partition's next owner starts.
        stack.wait_until(
            lambda: (
                stack.committed_offsets(settings.app_id, settings.routed_topic, range(PARTITIONS))
                == routed_ends
            ),
            10,
            f"stage two's commits at the routed ends {routed_ends}",
        )
    finally:
        stack.stop()
