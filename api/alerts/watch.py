"""Alert transitions for a terminal: what ``callpulse dev`` prints as alerts fire and resolve."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

SHOWN = ("firing", "resolved")  # pending and cancelled ones would only be noise on a terminal


class AlertWatch:
    """Follows ``GET /v1/alerts`` and hands back each shown transition once, oldest first."""

    def __init__(self, base_url: str) -> None:
        self.url = f"{base_url}/v1/alerts?limit=200"
        self.seen = 0

    def poll(self) -> list[str]:
        try:
            with urllib.request.urlopen(self.url, timeout=1) as reply:  # noqa: S310 - our own URL
                recent: list[dict[str, Any]] = json.load(reply)["recent"]
        except (OSError, ValueError, KeyError):
            return []  # not up yet, alerting off, or the API asks for a token
        return self.new(recent)

    def new(self, recent: list[dict[str, Any]]) -> list[str]:
        fresh = sorted((t for t in recent if t["sequence"] > self.seen), key=_sequence)
        if fresh:
            self.seen = fresh[-1]["sequence"]
        return [t["summary"] for t in fresh if t["status"] in SHOWN]


def _sequence(transition: dict[str, Any]) -> int:
    return int(transition["sequence"])
