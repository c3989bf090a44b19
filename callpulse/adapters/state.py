"""The follower's state file: where reading resumes, and the agents' queues at that point.

Written atomically (a temporary file renamed over the old one) after the broker acknowledged
every event up to the saved position, so a crash at any moment resumes at or before the last
published line: at-least-once, and the event ids make the repeats count once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callpulse.adapters.follow import Position

VERSION = 1


class StateFileError(Exception):
    pass


@dataclass
class FollowState:
    position: Position | None = None
    roster: dict[str, Any] = field(default_factory=dict)


def load_state(path: Path | None) -> FollowState:
    if path is None or not path.exists():
        return FollowState()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        saved = data["position"]
        position = None
        if saved is not None:
            position = Position(
                str(saved["path"]), int(saved["offset"]), bytes.fromhex(saved["tail"])
            )
        return FollowState(position, dict(data.get("roster") or {}))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StateFileError(
            f"state file {path} is unreadable ({exc}); remove it to read from the start"
        ) from None


def save_state(path: Path, state: FollowState) -> None:
    position = state.position
    data = {
        "version": VERSION,
        "saved_at": datetime.now(UTC).isoformat(),
        "position": None
        if position is None
        else {"path": position.path, "offset": position.offset, "tail": position.tail.hex()},
        "roster": state.roster,
    }
    temporary = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
