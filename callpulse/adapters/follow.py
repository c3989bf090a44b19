"""Reading a log file as its writer appends to it, across rotations and restarts.

A position is an offset in a file plus the last bytes before it (the *tail*). The tail, not
the inode, is what recognises a file later: logrotate's ``create`` mode renames the file
(same inode, new name), ``copytruncate`` copies it (new inode, same bytes) and empties the
original, and ``compress`` rewrites the copy as ``.gz``. Whichever happened while callpulse
was stopped, the file whose bytes before the saved offset equal the saved tail is where
reading resumes; the rotated files after it, then the live file, follow.

While following, complete lines only are returned (a line without its newline is still being
written). At the end of the live file the follower checks whether the path now names another
file (rotated by renaming: the old file is drained first) or a shorter one (copytruncate: the
lines it had not read yet are read from the copy, found by its tail). logrotate's own
copytruncate race (lines written between the copy and the truncation) is lost to any reader.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

TAIL_BYTES = 256
CHUNK_BYTES = 1 << 16


@dataclass(frozen=True, slots=True)
class Position:
    path: str
    offset: int
    tail: bytes  # the bytes just before ``offset`` (at most TAIL_BYTES)


@dataclass(frozen=True, slots=True)
class Line:
    raw: bytes  # without its newline
    number: int  # 1-based line number in its file, for messages
    position: Position  # just after this line


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        # Offsets in a .gz are offsets in its content.
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


class LineReader:
    """Complete lines of one file from an offset, as they appear."""

    def __init__(self, path: Path, offset: int = 0, tail: bytes = b"") -> None:
        self.path = path
        self.handle = _open(path)
        self.handle.seek(offset)
        self.offset = offset  # of the first byte not yet returned in a line
        self.tail = tail
        self.number = 0 if offset == 0 else -1  # line numbers are unknown after a seek
        self._pending = b""
        identity = os.fstat(self.handle.fileno()) if path.suffix != ".gz" else None
        self.identity = (identity.st_dev, identity.st_ino) if identity else None

    def read_lines(self, max_lines: int = 5000, *, final: bool = False) -> list[Line]:
        """Complete lines now available; ``final`` also returns an unterminated last line."""
        lines: list[Line] = []
        while len(lines) < max_lines:
            newline = self._pending.find(b"\n")
            if newline < 0:
                chunk = self.handle.read(CHUNK_BYTES)
                if chunk:
                    self._pending += chunk
                    continue
                if final and self._pending:
                    lines.append(self._take(len(self._pending), len(self._pending)))
                break
            lines.append(self._take(newline, newline + 1))
        return lines

    def _take(self, end: int, consumed: int) -> Line:
        raw, self._pending = self._pending[:end], self._pending[consumed:]
        if consumed > end:  # a terminated line: the position moves past it
            self.tail = (self.tail + raw + b"\n")[-TAIL_BYTES:]
            self.offset += consumed
        # An unterminated final line is returned, but its position stays before it: a later
        # run reads it again once complete (its event ids are the same if it was).
        self.number = self.number + 1 if self.number >= 0 else -1
        return Line(raw, self.number, Position(str(self.path), self.offset, self.tail))

    def close(self) -> None:
        self.handle.close()


def rotated_siblings(live: Path) -> list[Path]:
    """Rotated copies of ``live`` (``queue_log.1``, ``queue_log-20240301.gz``...), oldest first."""
    if not live.parent.is_dir():
        return []
    found = [
        p
        for p in live.parent.iterdir()
        if p.is_file() and p.name != live.name and p.name.startswith(live.name)
    ]
    return sorted(found, key=_age_key)


def _age_key(path: Path) -> tuple[float, int]:
    """Rotation order: the file's first line's time, else its modification time."""
    stat = path.stat()
    try:
        with _open(path) as handle:
            first = handle.readline(4096).split(b"|", 1)[0]
        return float(first), stat.st_mtime_ns
    except (OSError, ValueError, EOFError):
        return stat.st_mtime_ns / 1e9, stat.st_mtime_ns


def live_file(path: Path) -> Path:
    """The file Asterisk writes: ``path`` itself, or for a directory its ``queue_log``."""
    if not path.is_dir():
        return path
    named = path / "queue_log"
    if named.exists():
        return named
    files = sorted((p for p in path.iterdir() if p.is_file()), key=_age_key)
    if not files:
        raise FileNotFoundError(f"{path} holds no queue_log files")
    return files[-1]


def matches(path: Path, position: Position) -> bool:
    """Whether ``path`` holds the bytes of ``position``: its tail ends at its offset."""
    start = position.offset - len(position.tail)
    if start < 0:
        return False
    try:
        with _open(path) as handle:
            handle.seek(start)
            return handle.read(len(position.tail)) == position.tail
    except (OSError, EOFError):
        return False


def resume_plan(
    live: Path, saved: Position | None, *, include_rotated: bool
) -> list[tuple[Path, int, bytes]]:
    """The files to read, in order, as (path, start offset, tail), the live file last."""
    rotated = rotated_siblings(live)
    everything = [(p, 0, b"") for p in (*rotated, live)]
    if saved is None:
        return everything if include_rotated else [(live, 0, b"")]
    if saved.offset == 0:
        return everything if include_rotated else [(live, 0, b"")]
    newest_first = [live, *reversed(rotated)]
    for index, candidate in enumerate(newest_first):
        if candidate.exists() and matches(candidate, saved):
            newer = list(reversed(newest_first[:index]))  # rotated after it, then the live file
            return [(candidate, saved.offset, saved.tail), *((p, 0, b"") for p in newer)]
    # Nothing holds the saved bytes any more (deleted, or rewritten): read everything again.
    # Safe: event ids come from the lines, so what was already sent counts once.
    return everything


class Follower:
    """Lines of ``live`` and of the files it rotates into, from a plan, forever."""

    def __init__(self, live: Path, plan: list[tuple[Path, int, bytes]]) -> None:
        self.live = live
        self._queue = list(plan)
        self.reader: LineReader | None = None
        self.switches: list[str] = []  # what happened, for the log: "rotated", "truncated"

    def poll(self, max_lines: int = 5000) -> list[Line]:
        """New complete lines, or ``[]`` when there is nothing new yet."""
        while True:
            if self.reader is None and not self._open_next():
                return []
            assert self.reader is not None
            last_of_plan = not self._queue
            lines = self.reader.read_lines(max_lines, final=not last_of_plan)
            if lines:
                return lines
            if not last_of_plan:
                self._close()  # an older file is done: on to the next
                continue
            return self._check_live()

    def _open_next(self) -> bool:
        while self._queue:
            path, offset, tail = self._queue.pop(0)
            if path.exists():
                self.reader = LineReader(path, offset, tail)
                return True
        return False

    def _check_live(self) -> list[Line]:
        reader = self.reader
        assert reader is not None
        try:
            stat = self.live.stat()
        except FileNotFoundError:
            return []  # between the rename and the new file: wait
        if reader.path == self.live and reader.identity != (stat.st_dev, stat.st_ino):
            self.switches.append("rotated")
            # The renamed file may have received its last lines since the read above.
            self._queue = [(self.live, 0, b"")]
            lines = reader.read_lines(final=False)
            return lines or self._next_after_close()
        if reader.path == self.live and stat.st_size < reader.offset:
            self.switches.append("truncated")
            position = Position(str(reader.path), reader.offset, reader.tail)
            copy = next(
                (p for p in reversed(rotated_siblings(self.live)) if matches(p, position)), None
            )
            self._queue = [(copy, reader.offset, reader.tail)] if copy else []
            self._queue.append((self.live, 0, b""))
            return self._next_after_close()
        return []

    def _next_after_close(self) -> list[Line]:
        self._close()
        return self.poll()

    def _close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    def close(self) -> None:
        self._close()

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def read_once(plan: list[tuple[Path, int, bytes]], max_lines: int = 5000) -> Iterator[list[Line]]:
    """Every line of the planned files, to their ends, in batches (no following)."""
    for path, offset, tail in plan:
        if not path.exists():
            continue
        reader = LineReader(path, offset, tail)
        try:
            while batch := reader.read_lines(max_lines, final=True):
                yield batch
        finally:
            reader.close()
