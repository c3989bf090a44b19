"""Alert states per (queue, rule): inactive -> pending -> firing -> resolved, with hysteresis.

An alert becomes active when its figure breaches the threshold and stays active until the
figure passes the clear threshold (not merely until it stops breaching), so a figure hovering
around the threshold does not flap. Active for ``for_s`` while pending, it fires. Every change
of state is one transition, and one notification. A figure with no value (an empty window,
too few calls, nobody waiting) ends an alert, as a vanished series does in Prometheus.

Time is passed in: the engine never reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from api.alerts.config import LIVE_FIELDS, Rule
from api.alerts.rules import rule_value, summary
from stream.kpi.timeutil import US_PER_S, us_to_rfc3339

Transition = dict[str, Any]


class FigureSource(Protocol):
    """Where the engine reads figures: the read model in the API, tables in tests."""

    def queue_names(self) -> list[str]: ...

    def figures(self, queue: str, window: str, now_us: int) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class AlertState:
    status: str = "inactive"  # or "pending", "firing"
    since_us: int | None = None  # when the alert became active
    fired_us: int | None = None
    value: float | None = None


INACTIVE = AlertState()


def step(
    state: AlertState, rule: Rule, value: float | None, now_us: int
) -> tuple[AlertState, str | None]:
    """The next state and the transition to report (None: nothing changed that anyone needs)."""
    if state.status == "inactive":
        if value is None or not rule.breaches(value):
            return state, None
        if rule.for_s <= 0:
            return AlertState("firing", now_us, now_us, value), "firing"
        return AlertState("pending", now_us, None, value), "pending"
    if value is None or rule.clears(value):
        return AlertState(value=value), "resolved" if state.status == "firing" else "cancelled"
    held_us = now_us - (state.since_us or now_us)
    if state.status == "pending" and held_us >= rule.for_s * US_PER_S:
        return replace(state, status="firing", fired_us=now_us, value=value), "firing"
    return replace(state, value=value), None


class AlertEngine:
    """Holds every alert's state; ``evaluate`` moves them all on to ``now_us``."""

    def __init__(self, rules_for: Callable[[str], tuple[Rule, ...]]) -> None:
        self._rules_for = rules_for
        self._rules: dict[str, tuple[Rule, ...]] = {}
        self.states: dict[tuple[str, str], tuple[Rule, AlertState]] = {}
        self.sequence = 0  # transitions so far: orders them for the SSE stream and receivers

    def rules(self, queue: str) -> tuple[Rule, ...]:
        rules = self._rules.get(queue)
        if rules is None:
            rules = self._rules[queue] = self._rules_for(queue)
        return rules

    def evaluate(
        self, source: FigureSource, now_us: int, queues: Sequence[str] | None = None
    ) -> list[Transition]:
        """Every queue's alerts (or those of ``queues`` only) moved on to ``now_us``."""
        transitions: list[Transition] = []
        for queue in source.queue_names() if queues is None else queues:
            by_window: dict[str, Mapping[str, Any]] = {}
            for rule in self.rules(queue):
                figures = by_window.get(rule.window)
                if figures is None:
                    figures = by_window[rule.window] = source.figures(queue, rule.window, now_us)
                transition = self._advance(queue, rule, rule_value(rule, figures), now_us)
                if transition is not None:
                    transitions.append(transition)
        return transitions

    def _advance(
        self, queue: str, rule: Rule, value: float | None, now_us: int
    ) -> Transition | None:
        _, before = self.states.get((queue, rule.name), (rule, INACTIVE))
        after, status = step(before, rule, value, now_us)
        self.states[(queue, rule.name)] = (rule, after)
        if status is None:
            return None
        self.sequence += 1
        return {
            **describe(queue, rule, after if after.since_us is not None else before),
            "sequence": self.sequence,
            "status": status,
            "previous": before.status,
            "value": value,
            "at": us_to_rfc3339(now_us),
            "summary": summary(queue, rule, status, value),
        }

    def active(self) -> list[dict[str, Any]]:
        """Pending and firing alerts, firing first, then by queue and rule."""
        found = [
            {**describe(queue, rule, state), "status": state.status, "value": state.value}
            for (queue, _), (rule, state) in self.states.items()
            if state.status != "inactive"
        ]
        return sorted(found, key=lambda a: (a["status"] != "firing", a["queue"], a["rule"]))

    def firing(self) -> list[tuple[str, str, bool]]:
        """(queue, rule, firing?) for every alert evaluated so far: the exported gauge."""
        return sorted(
            (queue, name, state.status == "firing")
            for (queue, name), (_, state) in self.states.items()
        )


def describe(queue: str, rule: Rule, state: AlertState) -> dict[str, Any]:
    """What identifies an alert and the rule behind it; ``id`` is the same from start to end."""
    since = state.since_us
    return {
        "id": f"{queue}/{rule.name}/{since}" if since is not None else None,
        "queue": queue,
        "rule": rule.name,
        "severity": rule.severity,
        "field": rule.field,
        "window": None if rule.field in LIVE_FIELDS else rule.window,
        "op": rule.op,
        "threshold": rule.threshold,
        "clear": rule.clear,
        "for_s": rule.for_s,
        "since": us_to_rfc3339(since) if since is not None else None,
        "fired_at": us_to_rfc3339(state.fired_us) if state.fired_us is not None else None,
    }
