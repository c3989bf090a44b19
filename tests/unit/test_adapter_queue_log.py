"""The queue_log ingest loop on real files: batches, --from, the state file, following."""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from callpulse.adapters.asterisk import QueueLogMapper
from callpulse.adapters.asterisk_agents import AgentRoster
from callpulse.adapters.core import Event, Gate, Refusal
from callpulse.adapters.queue_log import QueueLogIngest, QueueLogOptions
from callpulse.adapters.state import load_state
from stream.validation import EventValidator

DATA = Path(__file__).parents[1] / "data" / "asterisk" / "asterisk-18.queue_log"
LAST_S = 1709285403  # the fixture's last line


class RecordingSink:
    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.refusals: list[Refusal] = []

    async def send(
        self, events: Sequence[Event], refusals: Sequence[Refusal], *, source: str
    ) -> None:
        assert source == "asterisk-queue-log"
        self.batches.append(list(events))
        self.refusals += refusals

    @property
    def events(self) -> list[Event]:
        return [e for batch in self.batches for e in batch]


def ingest(
    options: QueueLogOptions, roster: AgentRoster | None = None
) -> tuple[QueueLogIngest, RecordingSink, list[str]]:
    sink, reports = RecordingSink(), []
    gate = Gate(EventValidator(), clock=lambda: LAST_S + 60)
    mapper = QueueLogMapper(roster)
    run = QueueLogIngest(mapper, gate, sink, options, lambda n: "ph1:x", reports.append)
    return run, sink, reports


async def test_a_whole_file_and_its_saved_position(tmp_path: Path) -> None:
    log, state_file = tmp_path / "queue_log", tmp_path / "state.json"
    shutil.copy(DATA, log)
    run, sink, reports = ingest(QueueLogOptions(str(log), state_file=state_file))
    stats = await run.run(None)
    assert (stats.inputs, stats.events, dict(stats.refused), reports) == (133, 127, {}, [])
    assert len(sink.events) == 127
    saved = load_state(state_file)
    assert saved.position is not None and saved.position.offset == log.stat().st_size
    assert saved.roster["Alice Martin"]["queues"] == ["sales", "support"]

    # Appended lines, next run: only they are read, and the roster comes back from the file.
    with log.open("a") as handle:
        handle.write(f"{LAST_S + 5}|NONE|support|Alice Martin|PAUSE|Training\n")
    again, sink2, _ = ingest(
        QueueLogOptions(str(log), state_file=state_file), AgentRoster.from_json(saved.roster)
    )
    await again.run(saved.position)
    [paused] = sink2.events
    assert (paused["state"], paused["queues"], paused["reason"]) == (
        "paused",
        ["sales", "support"],  # known from lines the second run never read
        "Training",
    )


async def test_from_skips_earlier_lines_but_keeps_the_agents(tmp_path: Path) -> None:
    from_s = 1709284500  # half-way: members joined long before
    run, sink, _ = ingest(QueueLogOptions(str(DATA), from_s=from_s))
    stats = await run.run(None)
    assert min(e["ts"] for e in sink.events) == from_s
    snapshot = [e for e in sink.events if e["event_id"].startswith("ast-snapshot:")]
    assert {e["agent_id"]: e["state"] for e in snapshot} == {
        "Alice Martin": "on_call",  # connected at 09:14:50, completed at 09:16:55
        "Bob Chen": "paused",  # paused at 09:00:40, unpaused exactly at --from: not yet
        "Dana Ruiz": "available",
        "Erin Park": "paused",
        "Local/2003@from-queue/n": "available",
        "PJSIP/2004": "on_call",
    }
    before = sum(1 for line in DATA.read_text().splitlines() if int(line[:10]) < from_s)
    assert stats.skipped["before_from"] == before


async def test_a_refused_line_is_reported_with_its_place_and_scrubbed(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_text(
        f"{LAST_S}|1.1|sales|NONE|ENTERQUEUE||+442079460199|1\n"
        f"{LAST_S}|1.2|sales|NONE|ENTERQUEUE||+442079460101\n"
        f"{LAST_S}|1.1|sales|NONE|CONNECT|oops|+442079460199\n"
    )
    run, sink, reports = ingest(QueueLogOptions(str(log)))
    stats = await run.run(None)
    assert stats.refused == {"unmappable": 1}
    assert reports == [
        f"{log}:3: refused (unmappable): CONNECT needs a queue member in the agent field"
    ]
    [refusal] = sink.refusals
    assert refusal.index == 3
    assert refusal.raw == f"{LAST_S}|1.1|sales|NONE|CONNECT|oops|ph1:x"
    assert Counter(e["type"] for e in sink.events) == {"call.offered": 2}


async def test_following_through_a_rotation(tmp_path: Path) -> None:
    log, state_file = tmp_path / "queue_log", tmp_path / "state.json"
    log.write_text(f"{LAST_S}|1.1|sales|NONE|ENTERQUEUE||1|1\n")
    run, sink, reports = ingest(
        QueueLogOptions(str(log), follow=True, state_file=state_file, poll_s=0.01)
    )
    task = asyncio.create_task(run.run(None))

    async def until(count: int) -> None:
        for _ in range(500):
            if len(sink.events) >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{len(sink.events)} events, expected {count}")

    await until(1)
    with log.open("a") as handle:
        handle.write(f"{LAST_S + 1}|1.1|sales|NONE|ABANDON|1|1|1\n")
    log.rename(tmp_path / "queue_log.1")
    log.write_text(f"{LAST_S + 2}|1.2|sales|NONE|ENTERQUEUE||2|1\n")
    await until(3)
    run.stop.set()
    await task
    assert [e["type"] for e in sink.events] == ["call.offered", "call.abandoned", "call.offered"]
    assert reports == [f"{log}: rotated, reading on"]
    saved = load_state(state_file).position
    assert saved is not None and (saved.path, saved.offset) == (str(log), log.stat().st_size)
