"""What every adapter shares: mapping outcomes, source-derived event ids, the all-or-nothing gate.

A mapper turns one source input into the contract events it stands for, returns ``Skipped``
when the input is well formed but carries nothing for the KPIs, or raises ``Unmappable``. The
``Gate`` then runs every event through the contract's validator: one invalid event refuses the
whole input, so nothing half-mapped is ever published.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream.decode import Rejection
from stream.kpi.timeutil import US_PER_S, TimestampError, parse_ts_us
from stream.validation import EventValidator

Event = dict[str, Any]

# The dead-letter reason of an input no mapping rule accepts (the validator's own reasons
# cover mapped events that fail the contract, e.g. ``too_old``).
UNMAPPABLE = "unmappable"


class Unmappable(Exception):  # a result, like StopIteration, not a failure
    """The input cannot become contract events; ``problems`` says why, one sentence each."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A well-formed input that carries nothing for the KPIs, counted under ``kind``."""

    kind: str


Mapped = list[Event] | Skipped


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why one input was refused. ``reason`` is a low-cardinality label (the DLQ reason)."""

    reason: str
    problems: tuple[str, ...]
    index: int | None = None  # the input's position: line number, item of a batch
    raw: str | None = None  # what may be shown of the input (never a raw caller number)

    @property
    def detail(self) -> str:
        return "; ".join(self.problems)

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "reason": self.reason, "problems": list(self.problems)}


def event_id(prefix: str, *parts: str) -> str:
    """A stable id from source identifiers: the same input always gets the same id."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}:{digest[:32]}"


def require_text(payload: dict[str, Any], name: str, where: str = "") -> str:
    """``payload[name]`` as a non-empty string, else ``Unmappable`` naming the field."""
    value = payload.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise Unmappable(f"field '{where}{name}' is required (a non-empty string)")
    return value.strip()


def seconds(value: object, name: str) -> float:
    """A duration in seconds from a number or numeric string; ``Unmappable`` otherwise."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise Unmappable(f"field '{name}' must be a number of seconds, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Unmappable(f"field '{name}' must be a number of seconds, got {value!r}")
    if value < 0:
        raise Unmappable(f"field '{name}' must not be negative, got {value!r}")
    return float(value) if isinstance(value, float) else value


def epoch_seconds(value: object, name: str, *, unit_s: float = 1.0) -> float:
    """A time as epoch seconds: a number (or numeric string) of ``unit_s``, or RFC 3339 text."""
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                return parse_ts_us(text) / US_PER_S
            except TimestampError as exc:
                raise Unmappable(f"field '{name}': {exc}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Unmappable(f"field '{name}' must be a time (epoch or RFC 3339), got {value!r}")
    return float(value) * unit_s


class Gate:
    """All or nothing: an input's events are all valid contract events, or none is published."""

    def __init__(self, validator: EventValidator, clock: Callable[[], float] = time.time) -> None:
        self.validator = validator
        self.clock = clock

    def admit(self, mapper: Callable[[], Mapped], *, index: int | None = None) -> Mapped | Refusal:
        """Run one input's mapper; its events if every one is valid, else why not."""
        try:
            mapped = mapper()
        except Unmappable as exc:
            return Refusal(UNMAPPABLE, exc.problems, index=index)
        if isinstance(mapped, Skipped):
            return mapped
        return self.check(mapped, index=index)

    def check(self, events: list[Event], *, index: int | None = None) -> list[Event] | Refusal:
        now_us = int(self.clock() * US_PER_S)
        rejections = [
            result
            for event in events
            if isinstance(result := self.validator.validate(event, now_us=now_us), Rejection)
        ]
        if not rejections:
            return events
        # One label per input: the first problem's; every problem is listed.
        problems = tuple(r.detail for r in rejections)
        return Refusal(rejections[0].reason, problems, index=index)


@dataclass
class IngestStats:
    """What one ingest run (or one webhook endpoint) did with its inputs."""

    inputs: int = 0
    events: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    def count(self, outcome: Mapped | Refusal) -> None:
        self.inputs += 1
        if isinstance(outcome, Refusal):
            self.refused[outcome.reason] += 1
        elif isinstance(outcome, Skipped):
            self.skipped[outcome.kind] += 1
        else:
            self.events += len(outcome)

    def summary(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "events": self.events,
            "skipped": dict(sorted(self.skipped.items())),
            "refused": dict(sorted(self.refused.items())),
        }


def split_outcomes(
    outcomes: Sequence[Mapped | Refusal],
) -> tuple[list[Event], list[Refusal]]:
    """The events to publish and the refusals to report, in input order."""
    events: list[Event] = []
    refusals: list[Refusal] = []
    for outcome in outcomes:
        if isinstance(outcome, Refusal):
            refusals.append(outcome)
        elif not isinstance(outcome, Skipped):
            events.extend(outcome)
    return events, refusals
