"""Alert states: pending -> firing -> resolved, hysteresis, ``for``, one transition per change.

The service-level rule below (``<`` 0.8, clears at 0.85, ``for`` 30 s) over time::

    figure  0.9   0.7   0.7   0.7   0.82  0.82  0.86  0.7   0.9
    t (s)   0     10    30    40    50    60    70    80    90
    state   -     pend  pend  FIRE  FIRE  FIRE  -     pend  -
    sent          pending     firing            resolved    cancelled
                  (10 + 30 = 40)    (0.82: dead band)  (pending, then cleared before `for`)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from api.alerts.config import Rule
from api.alerts.engine import INACTIVE, AlertEngine, AlertState, step
from api.alerts.figures import calls_waiting_no_agent
from api.alerts.rules import rule_value, summary
from stream.kpi.timeutil import US_PER_S

SL_RULE = Rule("service_level_low", "service_level", "<", 0.8, 0.85, "15m", 30.0, 10, "critical")
WAIT_RULE = Rule("longest_wait_high", "longest_wait_s", ">", 120.0, 90.0, "15m", 0.0, 0, "warning")
T0_US = 1_700_000_000 * US_PER_S


def at(seconds: float) -> int:
    return T0_US + round(seconds * US_PER_S)


PENDING = AlertState("pending", at(0), None, 0.7)
FIRING = AlertState("firing", at(0), at(30), 0.7)


@pytest.mark.parametrize(
    ("state", "rule", "value", "now_s", "status", "sent"),
    [
        (INACTIVE, SL_RULE, 0.9, 0, "inactive", None),  # healthy: nothing
        (INACTIVE, SL_RULE, 0.8, 0, "inactive", None),  # exactly the threshold is not below it
        (INACTIVE, SL_RULE, 0.79, 0, "pending", "pending"),  # breached, waits out `for`
        (INACTIVE, SL_RULE, None, 0, "inactive", None),  # no value: nothing to alert on
        (INACTIVE, WAIT_RULE, 121.0, 0, "firing", "firing"),  # no `for`: fires at once
        (INACTIVE, WAIT_RULE, 120.0, 0, "inactive", None),  # exactly the limit is not above it
        (PENDING, SL_RULE, 0.7, 29.9, "pending", None),  # not held long enough yet
        (PENDING, SL_RULE, 0.7, 30, "firing", "firing"),  # held exactly `for`: fires
        (PENDING, SL_RULE, 0.83, 30, "firing", "firing"),  # dead band still counts as held
        (PENDING, SL_RULE, 0.85, 10, "inactive", "cancelled"),  # cleared before it fired
        (PENDING, SL_RULE, None, 10, "inactive", "cancelled"),  # the figure went away
        (FIRING, SL_RULE, 0.7, 300, "firing", None),  # still bad: no second notification
        (FIRING, SL_RULE, 0.84, 300, "firing", None),  # above trigger, below clear: hysteresis
        (FIRING, SL_RULE, 0.85, 300, "inactive", "resolved"),  # exactly clear: resolved
        (FIRING, SL_RULE, None, 300, "inactive", "resolved"),  # too few calls now: resolved
    ],
)
def test_step(
    state: AlertState,
    rule: Rule,
    value: float | None,
    now_s: float,
    status: str,
    sent: str | None,
) -> None:
    after, transition = step(state, rule, value, at(now_s))
    assert (after.status, transition) == (status, sent)
    if status == "firing" and state.status == "pending":
        assert after.since_us == state.since_us, "the alert keeps the moment it became active"


class TableSource:
    """Figures set by the test; every other KPI field is a healthy, busy queue's."""

    def __init__(self) -> None:
        self.by_queue: dict[str, dict[str, Any]] = {}

    def set(self, queue: str, **figures: Any) -> None:
        base = {"answered": 40, "abandoned": 2, "exited": 0, "service_level": 0.9}
        self.by_queue[queue] = {**base, **figures}

    def queue_names(self) -> list[str]:
        return sorted(self.by_queue)

    def figures(self, queue: str, window: str, now_us: int) -> Mapping[str, Any]:
        return self.by_queue[queue]


def only_service_level(queue: str) -> tuple[Rule, ...]:
    return (SL_RULE,)


def test_the_docstring_timeline_sends_one_notification_per_transition() -> None:
    source, engine = TableSource(), AlertEngine(only_service_level)
    timeline = [(0, 0.9), (10, 0.7), (30, 0.7), (40, 0.7), (50, 0.82), (60, 0.82), (70, 0.86)]
    timeline += [(80, 0.7), (90, 0.9)]
    sent = []
    for seconds, figure in timeline:
        source.set("sales", service_level=figure)
        for _ in range(3):  # evaluating again at the same moment changes nothing
            sent += [(seconds, t["status"]) for t in engine.evaluate(source, at(seconds))]
    expected = [(10, "pending"), (40, "firing"), (70, "resolved"), (80, "pending")]
    assert sent == [*expected, (90, "cancelled")]


def test_a_transition_says_what_happened() -> None:
    source, engine = TableSource(), AlertEngine(only_service_level)
    source.set("sales", service_level=0.5)
    engine.evaluate(source, at(0))
    (firing,) = engine.evaluate(source, at(30))
    assert firing == {
        "id": f"sales/service_level_low/{at(0)}",
        "sequence": 2,
        "queue": "sales",
        "rule": "service_level_low",
        "status": "firing",
        "previous": "pending",
        "severity": "critical",
        "field": "service_level",
        "window": "15m",
        "op": "<",
        "threshold": 0.8,
        "clear": 0.85,
        "for_s": 30.0,
        "value": 0.5,
        "since": "2023-11-14T22:13:20Z",
        "fired_at": "2023-11-14T22:13:50Z",
        "at": "2023-11-14T22:13:50Z",
        "summary": "[FIRING] sales: service level 50.0% over 15m (< 80.0%; rule service_level_low)",
    }
    source.set("sales", service_level=0.95)
    (resolved,) = engine.evaluate(source, at(100))
    assert resolved["id"] == firing["id"], "receivers match the resolution to the alert"
    assert (resolved["status"], resolved["previous"], resolved["sequence"]) == (
        "resolved",
        "firing",
        3,
    )
    assert resolved["summary"] == (
        "[RESOLVED] sales: service level 95.0% over 15m "
        "(clears at >= 85.0%; rule service_level_low)"
    )


def test_queues_are_independent_and_active_lists_firing_first() -> None:
    def rules(queue: str) -> tuple[Rule, ...]:
        return (SL_RULE, WAIT_RULE)

    source, engine = TableSource(), AlertEngine(rules)
    source.set("sales", service_level=0.5, longest_wait_s=30.0)
    source.set("support", service_level=0.95, longest_wait_s=200.0)
    source.set("vip", service_level=0.95, longest_wait_s=None)
    sent = engine.evaluate(source, at(0))
    assert [(t["queue"], t["rule"], t["status"]) for t in sent] == [
        ("sales", "service_level_low", "pending"),
        ("support", "longest_wait_high", "firing"),
    ]
    active = [(a["queue"], a["rule"], a["status"]) for a in engine.active()]
    assert active == [
        ("support", "longest_wait_high", "firing"),
        ("sales", "service_level_low", "pending"),
    ]
    assert ("support", "longest_wait_high", True) in engine.firing()
    assert ("vip", "longest_wait_high", False) in engine.firing()


@pytest.mark.parametrize(
    ("figures", "value"),
    [
        ({"answered": 8, "abandoned": 1, "exited": 1, "service_level": 0.5}, 0.5),  # 10 calls: ok
        ({"answered": 8, "abandoned": 1, "exited": 0, "service_level": 0.5}, None),  # 9: too few
        ({"answered": 0, "abandoned": 0, "exited": 0, "service_level": None}, None),  # empty window
    ],
)
def test_min_calls_gates_windowed_figures(figures: dict[str, Any], value: float | None) -> None:
    assert rule_value(SL_RULE, figures) == value


@pytest.mark.parametrize(
    ("waiting", "agents", "value"),
    [
        (3, {"available": 0, "on_call": 4, "logged_in": 4, "logged_out": 0}, 3),  # all busy
        (3, {"available": 0, "logged_in": 0, "logged_out": 5}, 3),  # everyone went home
        (3, {"available": 1, "on_call": 3, "logged_in": 4, "logged_out": 0}, 0),  # someone free
        (0, {"available": 0, "on_call": 4, "logged_in": 4, "logged_out": 0}, 0),  # nobody waits
        (3, {"available": 0, "logged_in": 0, "logged_out": 0}, None),  # agents never reported
    ],
)
def test_calls_waiting_with_no_agent(
    waiting: int, agents: dict[str, int], value: int | None
) -> None:
    assert calls_waiting_no_agent(waiting, agents) == value


@pytest.mark.parametrize(
    ("status", "value", "text"),
    [
        ("firing", 134.4, "[FIRING] q: longest wait 134.4 s (> 120 s; rule longest_wait_high)"),
        (
            "resolved",
            None,
            "[RESOLVED] q: longest wait no value (clears at <= 90 s; rule longest_wait_high)",
        ),  # no call waits any more: the figure has no value
    ],
)
def test_summary_of_a_live_figure_names_no_window(
    status: str, value: float | None, text: str
) -> None:
    assert summary("q", WAIT_RULE, status, value) == text
