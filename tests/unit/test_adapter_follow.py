"""Following a log through logrotate (rename, copytruncate, compress) and restarts: real files."""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from callpulse.adapters.follow import (
    Follower,
    Line,
    Position,
    live_file,
    read_once,
    resume_plan,
    rotated_siblings,
)
from callpulse.adapters.state import FollowState, StateFileError, load_state, save_state


def append(path: Path, *lines: str, newline: bool = True) -> None:
    with path.open("ab") as handle:
        handle.write("".join(f"{line}\n" for line in lines).encode())
        if not newline:
            handle.seek(0, os.SEEK_END)


def drain(follower: Follower) -> list[str]:
    """Every line available now (polls until one comes back empty)."""
    got: list[str] = []
    while batch := follower.poll():
        got += [line.raw.decode() for line in batch]
    return got


def last_position(follower: Follower) -> Position:
    assert follower.reader is not None
    reader = follower.reader
    return Position(str(reader.path), reader.offset, reader.tail)


@pytest.fixture
def following() -> Iterator[Callable[[Path], Follower]]:
    """Followers from the start of a file, closed after the test."""
    opened: list[Follower] = []

    def start(path: Path) -> Follower:
        opened.append(Follower(path, resume_plan(path, None, include_rotated=False)))
        return opened[-1]

    yield start
    for follower in opened:
        follower.close()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "queue_log"
    append(path, "100|a|q|NONE|ENTERQUEUE||1|1", "101|a|q|NONE|ABANDON|1|1|1")
    return path


def test_lines_appear_as_they_are_completed(
    log: Path, following: Callable[[Path], Follower]
) -> None:
    follower = following(log)
    assert drain(follower) == ["100|a|q|NONE|ENTERQUEUE||1|1", "101|a|q|NONE|ABANDON|1|1|1"]
    with log.open("ab") as handle:
        handle.write(b"102|b|q|NONE|ENTER")  # Asterisk mid-write
    assert drain(follower) == []  # not a line until its newline
    with log.open("ab") as handle:
        handle.write(b"QUEUE||2|1\n")
    assert drain(follower) == ["102|b|q|NONE|ENTERQUEUE||2|1"]


def test_rotation_by_rename_drains_the_old_file_first(
    log: Path, following: Callable[[Path], Follower]
) -> None:
    follower = following(log)
    drain(follower)
    append(log, "102|old tail written just before the rotation")
    log.rename(log.with_name("queue_log.1"))  # logrotate "create"
    append(log, "103|first line of the new file")
    assert drain(follower) == [
        "102|old tail written just before the rotation",
        "103|first line of the new file",
    ]
    assert follower.switches == ["rotated"]
    append(log, "104|and on")
    assert drain(follower) == ["104|and on"]


def test_copytruncate_reads_the_unread_lines_from_the_copy(
    log: Path, following: Callable[[Path], Follower]
) -> None:
    follower = following(log)
    drain(follower)
    append(log, "102|written after our last read")
    shutil.copyfile(log, log.with_name("queue_log.1"))  # logrotate "copytruncate"
    log.write_bytes(b"")
    append(log, "103|new content, same inode")
    assert drain(follower) == ["102|written after our last read", "103|new content, same inode"]
    assert follower.switches == ["truncated"]


def test_the_file_missing_between_rename_and_recreate_is_waited_for(
    log: Path, following: Callable[[Path], Follower]
) -> None:
    follower = following(log)
    drain(follower)
    log.rename(log.with_name("queue_log.1"))
    assert drain(follower) == []  # no live file yet: nothing, no error
    append(log, "103|recreated")
    assert drain(follower) == ["103|recreated"]


def restart(log: Path, saved: Position) -> list[str]:
    with Follower(log, resume_plan(log, saved, include_rotated=False)) as follower:
        return drain(follower)


@pytest.mark.parametrize(
    ("rotate", "expected"),
    [
        # stopped, nothing rotated: resume at the saved offset in the live file
        ("none", ["102|after the stop", "103|new"]),
        # stopped, logrotate renamed the file: finish it, then the new one
        ("rename", ["102|after the stop", "103|new"]),
        # stopped, rotated and compressed (delaycompress off): found inside the .gz
        ("rename+gzip", ["102|after the stop", "103|new"]),
        # stopped, copytruncate: the copy holds the saved bytes
        ("copytruncate", ["102|after the stop", "103|new"]),
    ],
)
def test_restart_resumes_after_the_saved_position(
    log: Path, following: Callable[[Path], Follower], rotate: str, expected: list[str]
) -> None:
    follower = following(log)
    drain(follower)
    saved = last_position(follower)
    follower.close()
    append(log, "102|after the stop")
    rotated = log.with_name("queue_log.1")
    if rotate.startswith("rename"):
        log.rename(rotated)
    if rotate == "rename+gzip":
        with gzip.open(log.with_name("queue_log.1.gz"), "wb") as handle:
            handle.write(rotated.read_bytes())
        rotated.unlink()
    if rotate == "copytruncate":
        shutil.copyfile(log, rotated)
        log.write_bytes(b"")
    append(log, "103|new")
    assert restart(log, saved) == expected


def test_a_position_nothing_matches_any_more_reads_everything_again(
    log: Path, following: Callable[[Path], Follower]
) -> None:
    saved = Position(str(log), 30, b"bytes that are in no file\n")
    # Re-reading is the safe side: the lines' event ids make repeats count once.
    assert restart(log, saved) == [
        "100|a|q|NONE|ENTERQUEUE||1|1",
        "101|a|q|NONE|ABANDON|1|1|1",
    ]


def test_a_directory_is_read_oldest_file_first(tmp_path: Path) -> None:
    # Names do not sort by age (.10 < .2), and copies lose their times: first lines decide.
    (tmp_path / "queue_log.10").write_text("50|oldest\n")
    (tmp_path / "queue_log.2.gz").write_bytes(gzip.compress(b"60|compressed\n"))
    (tmp_path / "queue_log.1").write_text("70|yesterday\n")
    (tmp_path / "queue_log").write_text("80|today\n")
    live = live_file(tmp_path)
    assert live.name == "queue_log"
    assert [p.name for p in rotated_siblings(live)] == [
        "queue_log.10",
        "queue_log.2.gz",
        "queue_log.1",
    ]
    plan = resume_plan(live, None, include_rotated=True)
    assert [line.raw for batch in read_once(plan) for line in batch] == [
        b"50|oldest",
        b"60|compressed",
        b"70|yesterday",
        b"80|today",
    ]


def test_reading_once_takes_an_unterminated_last_line_but_not_its_position(
    log: Path, following: Callable[[Path], Follower]
) -> None:
    with log.open("ab") as handle:
        handle.write(b"102|no newline yet")
    batches = list(read_once([(log, 0, b"")]))
    lines: list[Line] = [line for batch in batches for line in batch]
    assert lines[-1].raw == b"102|no newline yet"
    # A later run starts before it, and reads it again once complete.
    assert lines[-1].position.offset == lines[-2].position.offset
    assert [line.number for line in lines] == [1, 2, 3]


def test_state_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state" / "queue_log.json"
    state = FollowState(Position("/var/log/asterisk/queue_log", 42, b"\x00|tail\n"), {"a": {}})
    save_state(path, state)
    assert load_state(path) == state
    assert load_state(tmp_path / "absent.json") == FollowState()  # first run
    path.write_text("{not json")
    with pytest.raises(StateFileError, match="remove it"):
        load_state(path)
