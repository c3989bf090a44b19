"""Random call histories for tests, and an at-least-once, out-of-order delivery of them.

`generate_history` plays a small contact centre: calls arrive, wait (many of them right at the
20 s service-level and 5 s short-abandon boundaries), are answered by a free agent, abandoned,
exit the queue, or are still waiting at the end. Timestamps come in every form the contract
allows for the same instant. `duplicate_and_reorder` turns that into what a consumer sees.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from tests.reference import parse_ts_us

US_PER_S = 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OFFSETS = (timedelta(hours=2), timedelta(hours=-5), timedelta(hours=5, minutes=30))
# Waits right at, just below and just above the thresholds (20 s service level, 5 s short abandon).
SERVQUAL_DIMENSIONS = ("tangibles", "reliability", "responsiveness", "assurance", "empathy")
BOUNDARY_WAITS_US = (
    20_000_000, 20_000_000, 19_999_999, 20_000_001,
    5_000_000, 5_000_000, 4_999_999, 5_000_001, 0, 1_000_000,
)  # fmt: skip


def format_ts(ts_us: int, rng: random.Random) -> str | int | float:
    """The instant `ts_us` as "Z", "+00:00", another offset, or epoch seconds."""
    form = rng.random()
    moment = EPOCH + timedelta(microseconds=ts_us)
    if form < 0.15:
        # Whole seconds stay ints; otherwise the float's shortest form has the exact microseconds.
        return ts_us // US_PER_S if ts_us % US_PER_S == 0 else ts_us / US_PER_S
    if form < 0.35:
        moment = moment.astimezone(timezone(rng.choice(OFFSETS)))
        return moment.isoformat(timespec="microseconds")
    text = moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z") if form < 0.7 else text


@dataclass
class _Centre:
    rng: random.Random
    start_us: int
    end_us: int
    queues: Sequence[str]
    agent_queues: dict[str, list[str]]
    free_at_us: dict[str, int]
    raw: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    def emit(self, ts_us: int, event_type: str, **fields: Any) -> bool:
        """Record an event if it happens before the end; tell whether it did."""
        if not self.start_us <= ts_us < self.end_us:
            return False
        self.raw.append((ts_us, {"type": event_type, **fields}))
        return True

    def set_state(self, ts_us: int, agent: str, state: str) -> bool:
        queues = [] if state == "logged_out" else list(self.agent_queues[agent])
        return self.emit(ts_us, "agent.state", agent_id=agent, state=state, queues=queues)


def _draw_wait_us(rng: random.Random) -> int:
    pick = rng.random()
    if pick < 0.3:
        return rng.choice(BOUNDARY_WAITS_US)
    if pick < 0.8:
        return rng.randrange(0, 40 * US_PER_S)
    return rng.randrange(0, 180 * US_PER_S)


def _free_agent(centre: _Centre, queue: str, at_us: int) -> str | None:
    free = [
        a for a, qs in centre.agent_queues.items() if queue in qs and centre.free_at_us[a] <= at_us
    ]
    return centre.rng.choice(sorted(free)) if free else None


def _with_wait(fields: dict[str, Any], wait_us: int, rng: random.Random) -> dict[str, Any]:
    # About half the outcomes carry wait_s; the others leave it to the offered ts.
    return {**fields, "wait_s": wait_us / US_PER_S} if rng.random() < 0.5 else fields


def _after_call(centre: _Centre, call: dict[str, Any], agent: str, answered_us: int) -> int:
    """Talk, hold, transfer, wrap-up, disposition and survey; return when the agent is free."""
    rng = centre.rng
    talk_us, hold_us = rng.randrange(10, 240) * US_PER_S, 0
    if rng.random() < 0.3:
        hold_us = rng.randrange(1, 120 * US_PER_S)
    if rng.random() < 0.1:
        other = rng.choice(sorted(centre.agent_queues))
        target = (
            {"to_queue": rng.choice(centre.queues)} if rng.random() < 0.5 else {"to_agent": other}
        )
        centre.emit(
            answered_us + talk_us // 2, "call.transferred", **call, agent_id=agent, **target
        )
    ended_us = answered_us + talk_us + hold_us
    ended = {"talk_s": talk_us / US_PER_S} | ({"hold_s": hold_us / US_PER_S} if hold_us else {})
    if not centre.emit(ended_us, "call.ended", **call, agent_id=agent, **ended):
        return centre.end_us
    centre.set_state(ended_us, agent, "acw")
    wrapped_us = ended_us + rng.randrange(1, 60 * US_PER_S)
    if not centre.emit(
        wrapped_us,
        "call.wrapup_ended",
        **call,
        agent_id=agent,
        acw_s=(wrapped_us - ended_us) / US_PER_S,
    ):
        return centre.end_us
    _disposition(centre, call, agent, wrapped_us)
    if rng.random() < 0.1 and centre.set_state(wrapped_us + 1, agent, "paused"):
        wrapped_us += rng.randrange(30, 300) * US_PER_S
    centre.set_state(wrapped_us + 1, agent, "available")
    return wrapped_us + 1


def _disposition(centre: _Centre, call: dict[str, Any], agent: str, at_us: int) -> None:
    rng = centre.rng
    if rng.random() < 0.6:
        # Most dispositions leave first contact to the repeat-caller rule.
        first = {} if rng.random() < 0.6 else {"first_contact": rng.random() < 0.7}
        centre.emit(at_us, "call.resolved", **call, resolved=rng.random() < 0.8, **first)
    if rng.random() < 0.5:
        survey = rng.choice(("csat", "nps", "ces"))
        score = {"csat": rng.randint(1, 5), "nps": rng.randint(0, 10), "ces": rng.randint(1, 7)}
        extra: dict[str, Any] = {"scale_max": 5} if survey == "csat" and rng.random() < 0.5 else {}
        extra |= {"agent_id": agent} if rng.random() < 0.7 else {}
        centre.emit(
            at_us + rng.randrange(1, 60 * US_PER_S),
            "survey.response",
            **call,
            survey=survey,
            score=score[survey],
            **extra,
        )


def _play_call(centre: _Centre, number: int, offered_us: int, side: random.Random) -> None:
    rng = centre.rng
    call = {"queue": rng.choice(centre.queues), "call_id": f"c{number:05d}"}
    caller = f"p{rng.randrange(60):03d}"  # 60 frequent callers: many repeats
    if side.random() < 0.5:
        caller = f"u{side.randrange(10**6):06d}"  # and one-off callers: first contacts
    centre.emit(
        offered_us,
        "call.offered",
        **call,
        **({"caller": caller} if side.random() < 0.9 else {}),  # some callers withheld
        channel=rng.choice(("voice", "voice", "chat")),
    )
    outcome, wait_us = rng.random(), _draw_wait_us(rng)
    ends_us = offered_us + wait_us
    agent = _free_agent(centre, call["queue"], ends_us)
    if outcome < 0.65 and agent is not None:
        if centre.emit(
            ends_us, "call.answered", **_with_wait({**call, "agent_id": agent}, wait_us, rng)
        ):
            centre.set_state(ends_us, agent, "on_call")
            centre.free_at_us[agent] = _after_call(centre, call, agent, ends_us)
    elif outcome < 0.88:
        centre.emit(ends_us, "call.abandoned", **_with_wait(call, wait_us, rng))
    elif outcome < 0.95:
        reason = rng.choice(("timeout", "key", "overflow", "empty"))
        centre.emit(ends_us, "call.exited", **call, reason=reason, wait_s=wait_us / US_PER_S)
    # else: nothing yet, still waiting at the end (as is any outcome past the end).


def _side_traffic(centre: _Centre, rng: random.Random, count: int) -> None:
    """Tickets, self-service reads, customers, agent and SERVQUAL surveys at random times."""

    def when() -> int:
        return rng.randrange(centre.start_us, centre.end_us)

    for number in range(count):
        _play_ticket(centre, rng, f"t{number:04d}", when())
    for number in range(count):
        queue = {"queue": rng.choice(centre.queues)} if rng.random() < 0.6 else {}
        timed = {"read_s": round(rng.uniform(1, 300), 3)} if rng.random() < 0.8 else {}
        centre.emit(when(), "kb.article_viewed", article_id=f"kb{number % 7}", **queue, **timed)
    for number in range(count // 2):
        queue = {"queue": rng.choice(centre.queues)} if rng.random() < 0.3 else {}
        kind = "customer.acquired" if rng.random() < 0.6 else "customer.churned"
        centre.emit(when(), kind, customer_id=f"k{number:04d}", **queue)
    for number in range(count):
        queue, agent = rng.choice(centre.queues), rng.choice(sorted(centre.agent_queues))
        centre.emit(when(), "survey.response", queue=queue, survey="esat", agent_id=agent,
                    score=rng.randint(1, 5), scale_max=5)  # fmt: skip
        dimension = rng.choice(SERVQUAL_DIMENSIONS)
        centre.emit(when(), "survey.response", queue=queue, survey="servqual",
                    dimension=dimension, expectation=rng.randint(1, 7),
                    perception=rng.randint(1, 7), call_id=f"c{number:05d}")  # fmt: skip


def _play_ticket(centre: _Centre, rng: random.Random, ticket_id: str, opened_us: int) -> None:
    """Opened, first response (sometimes missing), resolved (with `contacts` half the time)."""
    fields = {"ticket_id": ticket_id, "queue": rng.choice(centre.queues)}
    channel = rng.choice(("email", "chat", "social", None))
    opened = fields | ({"channel": channel} if channel else {})
    if rng.random() < 0.9:  # a few tickets opened before the history began
        centre.emit(opened_us, "ticket.opened", **opened)
    responded_us = opened_us + rng.randrange(0, 900 * US_PER_S)
    if rng.random() < 0.85:
        other = rng.choice(("chat", None))  # the response may name a channel of its own
        centre.emit(responded_us, "ticket.first_response", **fields,
                    **({"channel": other} if other else {}))  # fmt: skip
    contacts = {"contacts": rng.randint(1, 4)} if rng.random() < 0.5 else {}
    centre.emit(responded_us + rng.randrange(0, 1200 * US_PER_S), "ticket.resolved",
                **fields, **contacts)  # fmt: skip


def generate_history(
    seed: int,
    *,
    start_us: int,
    duration_s: float,
    queues: Sequence[str] = ("sales", "support"),
    calls: int = 300,
    agents: int = 8,
) -> list[dict[str, Any]]:
    """Events with unique ids, sorted by ts, all in `[start_us, start_us + duration_s)`."""
    rng = random.Random(seed)
    end_us = start_us + round(duration_s * US_PER_S)
    agent_queues = {
        f"a{i:02d}": sorted(rng.sample(list(queues), rng.randint(1, len(queues))))
        for i in range(agents)
    }
    centre = _Centre(rng, start_us, end_us, queues, agent_queues, dict.fromkeys(agent_queues, 0))
    for agent in agent_queues:
        logged_in_us = start_us + rng.randrange(0, 60 * US_PER_S)
        centre.set_state(logged_in_us, agent, "available")
        centre.free_at_us[agent] = logged_in_us + 1
    arrivals = sorted(rng.randrange(start_us, end_us) for _ in range(calls))
    # Side traffic draws from its own generator: the calls stay those of the seed.
    side = random.Random(seed + 1_000_003)
    for number, offered_us in enumerate(arrivals):
        _play_call(centre, number, offered_us, side)
    _side_traffic(centre, side, max(calls // 10, 4))
    for agent in sorted(agent_queues):  # some agents log out once their last call is done
        if rng.random() < 0.2:
            centre.set_state(
                max(centre.free_at_us[agent], end_us - 30 * US_PER_S), agent, "logged_out"
            )
    ordered = sorted(centre.raw, key=lambda pair: pair[0])  # stable: ties keep emission order
    return [
        {"event_id": f"e{seed}-{i:06d}", **event, "ts": format_ts(ts_us, rng)}
        for i, (ts_us, event) in enumerate(ordered)
    ]


def duplicate_and_reorder(
    events: Sequence[dict[str, Any]],
    seed: int,
    *,
    duplicate_fraction: float = 0.2,
    max_delay_s: float = 30.0,
) -> list[dict[str, Any]]:
    """At-least-once delivery: some events twice (same id, same content), each one delayed by
    up to `max_delay_s` after its ts, delivered in order of arrival."""
    rng = random.Random(seed)
    max_delay_us = round(max_delay_s * US_PER_S)
    copies = [*events, *(e for e in events if rng.random() < duplicate_fraction)]
    arrivals = [
        (parse_ts_us(e["ts"]) + rng.randint(0, max_delay_us), rng.random(), copy.deepcopy(e))
        for e in copies
    ]
    arrivals.sort(key=lambda arrival: arrival[:2])
    return [event for _, _, event in arrivals]
