"""``callpulse ingest asterisk-queue-log``: lines from files, a directory or stdin to Kafka.

Lines are mapped in file order (the roster needs it), each line whole or refused whole, then
published in batches. After the broker has acknowledged a batch, the position after its last
line and the roster are saved (``--state-file``): a restart resumes there.

``--from T`` skips lines before T (they still teach the roster who serves which queue); the
first line at or after T is preceded by each known agent's state at T, so a backfill that
starts mid-day still knows who was logged in.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from callpulse.adapters.asterisk import QueueLogMapper, parse_line, scrub_line
from callpulse.adapters.core import (
    UNMAPPABLE,
    Event,
    Gate,
    IngestStats,
    Refusal,
    Skipped,
    Unmappable,
    split_outcomes,
)
from callpulse.adapters.follow import Follower, Line, Position, live_file, read_once, resume_plan
from callpulse.adapters.publish import Sink
from callpulse.adapters.state import FollowState, save_state

SOURCE = "asterisk-queue-log"
STDIN_BATCH_LINES = 2000


@dataclass(frozen=True)
class QueueLogOptions:
    path: str  # a file, a directory of rotated files, or "-" for stdin
    follow: bool = False
    from_s: float | None = None
    state_file: Path | None = None
    poll_s: float = 0.25


class QueueLogIngest:
    def __init__(
        self,
        mapper: QueueLogMapper,
        gate: Gate,
        sink: Sink,
        options: QueueLogOptions,
        pseudonymise: Callable[[str], str],
        report: Callable[[str], None],
    ) -> None:
        self.mapper, self.gate, self.sink, self.options = mapper, gate, sink, options
        self.pseudonymise, self.report = pseudonymise, report
        self.stats = IngestStats()
        self._before_from = False  # lines were skipped by --from: agents get a snapshot
        self.stop = asyncio.Event()

    async def run(self, saved: Position | None) -> IngestStats:
        if self.options.path == "-":
            await self._stdin()
            return self.stats
        live, plan = _plan(Path(self.options.path), saved)
        if not self.options.follow:
            for batch in read_once(plan):
                await self._publish(batch)
            return self.stats
        follower = Follower(live, plan)
        try:
            await self._follow(follower)
        finally:
            follower.close()
        return self.stats

    async def _follow(self, follower: Follower) -> None:
        while not self.stop.is_set():
            lines = follower.poll()
            while follower.switches:
                self.report(f"{follower.live}: {follower.switches.pop(0)}, reading on")
            if lines:
                await self._publish(lines)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.options.poll_s)

    async def _stdin(self) -> None:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=4 * STDIN_BATCH_LINES)
        loop = asyncio.get_running_loop()

        def read() -> None:  # a thread: reading a pipe blocks
            for raw in sys.stdin.buffer:
                asyncio.run_coroutine_threadsafe(queue.put(raw), loop).result()
            asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

        threading.Thread(target=read, daemon=True).start()
        number, done = 0, False
        while not done:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < STDIN_BATCH_LINES:
                batch.append(queue.get_nowait())
            done = batch[-1] is None
            lines = []
            for raw in batch:
                if raw is not None:
                    number += 1
                    lines.append(Line(raw.rstrip(b"\n"), number, Position("-", 0, b"")))
            await self._publish(lines, save=False)

    async def _publish(self, lines: list[Line], *, save: bool = True) -> None:
        events: list[Event] = []
        refusals: list[Refusal] = []
        for line in lines:
            mapped, refused = self._map(line)
            events.extend(mapped)
            refusals.extend(refused)
        if events or refusals:
            await self.sink.send(events, refusals, source=SOURCE)
        if save and lines and self.options.state_file is not None:
            state = FollowState(lines[-1].position, self.mapper.roster.to_json())
            save_state(self.options.state_file, state)

    def _map(self, line: Line) -> tuple[list[Event], list[Refusal]]:
        if not line.raw.strip():
            return [], []
        where = f"{line.position.path}:{line.number}" if line.number >= 0 else line.position.path
        events: list[Event] = []
        from_s = self.options.from_s
        if from_s is not None:
            if self._skip_before(line, from_s):
                return [], []
            if self._before_from:  # the first line at or after --from: agents first
                self._before_from = False
                events.extend(self._snapshot(int(from_s)))
        outcome = self.gate.admit(lambda: self.mapper.map(line.raw), index=line.number)
        self.stats.count(outcome)
        mapped, refusals = split_outcomes([outcome])
        for refusal in refusals:
            self.report(f"{where}: refused ({refusal.reason}): {refusal.detail}")
        raw = scrub_line(line.raw, self.pseudonymise)
        return events + mapped, [_with_raw(r, raw) for r in refusals]

    def _skip_before(self, line: Line, from_s: float) -> bool:
        """Whether the line is before ``--from`` (mapped for the roster, then dropped)."""
        try:
            parsed = parse_line(line.raw, self.mapper.aliases)
        except Unmappable:
            return False  # the gate refuses it, with the reason
        if parsed.time_s >= from_s:
            return False
        with contextlib.suppress(Unmappable):
            self.mapper.map_parsed(parsed)
        self._before_from = True
        self.stats.count(Skipped("before_from"))
        return True

    def _snapshot(self, time_s: int) -> list[Event]:
        outcome = self.gate.check(self.mapper.snapshot_events(time_s))
        if isinstance(outcome, Refusal):  # e.g. --from older than the retention
            self.report(f"agent snapshot at --from refused: {outcome.detail}")
            return []
        self.stats.events += len(outcome)
        return outcome


def _plan(given: Path, saved: Position | None) -> tuple[Path, list[tuple[Path, int, bytes]]]:
    live = live_file(given)
    return live, resume_plan(live, saved, include_rotated=given.is_dir())


def _with_raw(refusal: Refusal, raw: str) -> Refusal:
    return Refusal(refusal.reason or UNMAPPABLE, refusal.problems, refusal.index, raw)
