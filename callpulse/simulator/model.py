"""A discrete-event simulation of a contact centre that emits contract events (CONTRACT.md).

Pure and deterministic: one ``random.Random(seed)``, integer microsecond time, no clock, no I/O.
Every action sits on one agenda ordered by (time, insertion order) and draws from the generator
when it runs, so the events for a seed do not depend on how ``advance`` is sliced.

The centre runs silently for ``warmup_s`` before ``start_us`` so that the first reported minutes
already have busy agents and queued calls. At ``start_us`` every agent's state is announced; calls
and tickets that began during the warm-up are never reported, so every reported call starts with
its ``call.offered``.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from callpulse.simulator.profiles import (
    HOURS_PER_DAY,
    AgentProfile,
    CentreProfile,
    PauseReason,
    QueueProfile,
    SurveyProfile,
)
from stream.kpi.timeutil import US_PER_S, us_to_rfc3339

__all__ = [
    "AgentProfile",
    "CentreProfile",
    "Event",
    "PauseReason",
    "QueueProfile",
    "Simulation",
    "SurveyProfile",
]

Event = dict[str, object]
Action = Callable[[], None]

US_PER_HOUR = 3600 * US_PER_S
REPEAT_WINDOW_US = 72 * US_PER_HOUR  # the repeat-caller rule of KPIS.md
SERVQUAL_DIMENSIONS = ("tangibles", "reliability", "responsiveness", "assurance", "empathy")
WORKING_STATES = ("available", "on_call", "acw")
PAUSE_RETRY_S = 300.0


@dataclass(eq=False)
class _Call:
    call_id: str
    queue: QueueProfile
    caller: str
    offered_us: int
    is_repeat: bool
    reported: bool  # False for calls begun during the warm-up: none of their events is emitted
    transferred: bool = False  # a transferred leg is not transferred again
    outcome: str | None = None  # set once; makes the pending abandon or exit timer stale
    resolved: bool = False


@dataclass(eq=False)
class _Agent:
    profile: AgentProfile
    order: int  # ties in idle time go to the earlier agent, so the choice is deterministic
    state: str = "logged_out"
    state_since_us: int = 0
    reason: str | None = None  # of the current pause or log-out
    pending: str | None = None  # "pause" or "logout", taken when the current call is done
    benched: bool = False  # taken off by understaff(): stays logged out


@dataclass
class _Counters:
    event: int = 0
    call: int = 0
    ticket: int = 0
    customer: int = 0


@dataclass
class _Customers:
    active: list[str] = field(default_factory=list)
    last_call_us: dict[str, int] = field(default_factory=dict)


class Simulation:
    """The centre's calls, agents and side traffic, advanced explicitly in simulated time."""

    def __init__(self, centre: CentreProfile, *, start_us: int, seed: int) -> None:
        self._centre = centre
        self._seed = seed
        self._rng = random.Random(seed)  # noqa: S311 - reproducible traffic, not secrets
        # The catalogue's extra traffic draws apart, so the calls of a seed stay the same.
        self._extra_rng = random.Random(seed + 0x5EED)  # noqa: S311
        self._start_us = start_us
        self._now_us = start_us - round(centre.warmup_s * US_PER_S)
        self._reported_until_us = start_us
        self._agenda: list[tuple[int, int, Action]] = []
        self._scheduled = 0
        self._outbox: list[Event] = []
        self._counters = _Counters()
        self._queues = {queue.name: queue for queue in centre.queues}
        self._waiting: dict[str, deque[_Call]] = {name: deque() for name in self._queues}
        self._agents = [_Agent(profile, order) for order, profile in enumerate(centre.agents)]
        self._customers = _Customers([f"c-{n}" for n in range(1, centre.caller_population + 1)])
        self._counters.customer = centre.caller_population
        self._start()

    @property
    def now_us(self) -> int:
        """Simulated time reached: every event before it has been returned by ``advance``."""
        return self._reported_until_us

    def advance(self, until_us: int) -> list[Event]:
        """All events with ts < until_us not returned yet, in time order."""
        while self._agenda and self._agenda[0][0] < until_us:
            self._now_us, _, action = heapq.heappop(self._agenda)
            action()
        self._now_us = max(self._now_us, until_us)
        self._reported_until_us = max(self._reported_until_us, until_us)
        events, self._outbox = self._outbox, []
        return events

    def understaff(self, queue: str, factor: float) -> None:
        """Keep only ``factor`` (0..1) of the queue's logged-in agents; log the rest out for good.

        Busy agents finish their call first. Takes effect at the current simulated time.
        """
        if queue not in self._queues or not 0.0 <= factor <= 1.0:
            raise ValueError(f"unknown queue {queue!r} or factor {factor} outside 0..1")
        delay_us = self._reported_until_us - self._now_us  # > 0 only before the first advance
        self._schedule(delay_us, partial(self._bench_agents, queue, factor))

    def restaff(self, queue: str) -> None:
        """Bring back the agents ``understaff(queue, ...)`` logged out: they log in again (and
        take waiting calls) at the current simulated time."""
        if queue not in self._queues:
            raise ValueError(f"unknown queue {queue!r}")
        delay_us = self._reported_until_us - self._now_us
        self._schedule(delay_us, partial(self._unbench_agents, queue))

    def _unbench_agents(self, queue: str) -> None:
        for agent in self._agents:
            if agent.benched and queue in agent.profile.queues:
                agent.benched = False
                if agent.state == "logged_out":
                    self._resume(agent)  # still busy: it simply stays on when its call ends

    # -- agenda and emission -----------------------------------------------------------------

    def _schedule(self, delay_us: int, action: Action) -> None:
        self._scheduled += 1
        heapq.heappush(self._agenda, (self._now_us + delay_us, self._scheduled, action))

    def _emit(self, event_type: str, **fields: object) -> None:
        if self._now_us < self._start_us:
            return  # warm-up
        self._counters.event += 1
        event: Event = {
            "event_id": f"sim-{self._seed}-{self._counters.event}",
            "type": event_type,
            "ts": us_to_rfc3339(self._now_us),
        }
        event.update(fields)
        self._outbox.append(event)

    def _emit_call(self, event_type: str, call: _Call, **fields: object) -> None:
        if call.reported:
            self._emit(event_type, queue=call.queue.name, call_id=call.call_id, **fields)

    def _emit_if(self, reported: bool, event_type: str, **fields: object) -> None:
        if reported:
            self._emit(event_type, **fields)

    def _start(self) -> None:
        if self._now_us < self._start_us:
            self._schedule(self._start_us - self._now_us, self._announce_agents)
        for agent in self._agents:
            self._start_agent(agent)
        for queue in self._centre.queues:
            self._schedule_next_arrival(queue)
        centre = self._centre
        self._every(centre.tickets_per_hour, self._open_ticket)
        self._every(centre.kb_views_per_hour, self._view_article)
        self._every(centre.customers_acquired_per_hour, self._acquire_customer)
        self._every(centre.customers_churned_per_hour, self._churn_customer)
        if centre.esat_per_hour > 0:
            first_s = self._extra_rng.expovariate(centre.esat_per_hour / 3600.0)
            self._schedule(self._us(first_s), self._agent_pulse)

    def _start_agent(self, agent: _Agent) -> None:
        """Start near the steady mix of states, so the first minutes already look like a day."""
        logged_out_share, paused_share = self._steady_off_shares()
        draw = self._rng.random()
        if draw < logged_out_share:
            self._log_out(agent)
        elif draw < logged_out_share + paused_share:
            self._pause(agent)
        else:
            self._become_free(agent)
            # roughly the remaining part of a work period already under way
            first_pause_s = self._rng.uniform(0.0, self._centre.mean_work_between_pauses_s)
            self._schedule(self._us(first_pause_s), partial(self._pause_due, agent))

    def _announce_agents(self) -> None:
        """Every agent's state at ``start_us``, since the warm-up's agent events went unreported."""
        for agent in self._agents:
            self._emit_state(agent)

    def _steady_off_shares(self) -> tuple[float, float]:
        """Long-run shares of time an agent spends logged out and paused (renewal cycles)."""
        centre = self._centre
        reasons = centre.pause_reasons
        mean_pause_s = sum(r.weight * r.mean_s for r in reasons) / sum(r.weight for r in reasons)
        logged_out_s = centre.logout_probability * centre.mean_logged_out_s
        paused_s = (1.0 - centre.logout_probability) * mean_pause_s
        cycle_s = centre.mean_work_between_pauses_s + logged_out_s + paused_s
        return logged_out_s / cycle_s, paused_s / cycle_s

    # -- calls ---------------------------------------------------------------------------------

    def _arrive(self, queue: QueueProfile) -> None:
        self._schedule_next_arrival(queue)
        if not self._accepted_by_time_of_day(queue):
            return
        self._counters.call += 1
        caller = self._rng.choice(self._customers.active)
        last_us = self._customers.last_call_us.get(caller)
        self._customers.last_call_us[caller] = self._now_us
        is_repeat = last_us is not None and self._now_us - last_us <= REPEAT_WINDOW_US
        call_id = f"call-{self._seed}-{self._counters.call}"
        reported = self._now_us >= self._start_us
        self._offer(_Call(call_id, queue, caller, self._now_us, is_repeat, reported))

    def _offer(self, call: _Call) -> None:
        channels = self._centre.channel_weights
        channel = self._rng.choices([c for c, _ in channels], [w for _, w in channels])[0]
        self._emit_call("call.offered", call, caller=call.caller, channel=channel)
        agent = self._longest_idle_agent(call.queue.name)
        if agent is not None:
            self._answer(call, agent)
            return
        self._waiting[call.queue.name].append(call)
        patience_s = self._rng.expovariate(1.0 / call.queue.mean_patience_s)
        if patience_s < call.queue.max_wait_s:
            self._schedule(self._us(patience_s), partial(self._leave_queue, call, "abandoned"))
        else:
            give_up_us = self._us(call.queue.max_wait_s)
            self._schedule(give_up_us, partial(self._leave_queue, call, "exited"))

    def _leave_queue(self, call: _Call, outcome: str) -> None:
        if call.outcome is not None:
            return  # answered before the caller's patience or the queue's limit ran out
        call.outcome = outcome
        self._waiting[call.queue.name].remove(call)
        if outcome == "abandoned":
            self._emit_call("call.abandoned", call, wait_s=self._wait_s(call))
        else:
            self._emit_call("call.exited", call, reason="timeout", wait_s=self._wait_s(call))

    def _answer(self, call: _Call, agent: _Agent) -> None:
        call.outcome = "answered"
        agent_id = agent.profile.agent_id
        self._emit_call("call.answered", call, agent_id=agent_id, wait_s=self._wait_s(call))
        self._set_state(agent, "on_call")
        queue = call.queue
        sigma = queue.talk_sigma
        talk_s = self._rng.lognormvariate(math.log(queue.mean_talk_s) - sigma**2 / 2, sigma)
        hold_us = 0
        if self._rng.random() < queue.hold_probability:
            hold_us = self._exp_us(queue.mean_hold_s)
        talk_us = self._us(talk_s)
        leg = partial(self._end_leg, call, agent, talk_us, hold_us, self._transfer_target(call))
        self._schedule(talk_us + hold_us, leg)

    def _transfer_target(self, call: _Call) -> QueueProfile | None:
        queue = call.queue
        if call.transferred or not queue.transfer_to:
            return None  # one transfer per call keeps the ping-pong out of the figures
        if self._rng.random() >= queue.transfer_probability:
            return None
        return self._queues[self._rng.choice(queue.transfer_to)]

    def _end_leg(
        self, call: _Call, agent: _Agent, talk_us: int, hold_us: int, to_queue: QueueProfile | None
    ) -> None:
        agent_id = agent.profile.agent_id
        if to_queue is not None:
            self._emit_call("call.transferred", call, agent_id=agent_id, to_queue=to_queue.name)
        talk_s, hold_s = talk_us / US_PER_S, hold_us / US_PER_S
        self._emit_call("call.ended", call, agent_id=agent_id, talk_s=talk_s, hold_s=hold_s)
        self._set_state(agent, "acw")
        is_final_leg = to_queue is None
        if is_final_leg:
            call.resolved = self._rng.random() < call.queue.resolve_probability
            if self._rng.random() < call.queue.survey_probability:
                survey_us = self._exp_us(self._centre.mean_survey_delay_s)
                self._schedule(survey_us, partial(self._answer_survey, call, agent))
        acw_us = self._exp_us(call.queue.mean_acw_s)
        self._schedule(acw_us, partial(self._wrap_up, call, agent, acw_us, is_final_leg))
        if to_queue is not None:
            leg = _Call(
                call.call_id,
                to_queue,
                call.caller,
                self._now_us,
                call.is_repeat,
                call.reported,
                transferred=True,
            )
            self._offer(leg)

    def _wrap_up(self, call: _Call, agent: _Agent, acw_us: int, is_final_leg: bool) -> None:
        agent_id = agent.profile.agent_id
        self._emit_call("call.wrapup_ended", call, agent_id=agent_id, acw_s=acw_us / US_PER_S)
        if is_final_leg and self._rng.random() < self._centre.disposition_share:
            first_contact = call.resolved and not call.is_repeat and not call.transferred
            flagged = self._extra_rng.random() < self._centre.first_contact_flag_share
            flag = {"first_contact": first_contact} if flagged else {}  # else: repeat rule
            self._emit_call("call.resolved", call, resolved=call.resolved, **flag)
        self._become_free(agent)

    def _answer_survey(self, call: _Call, agent: _Agent) -> None:
        # resolution drives satisfaction most; some resolved callers are unhappy all the same
        pleased = call.resolved and self._rng.random() < 0.85
        for survey in self._centre.surveys:
            if self._rng.random() >= survey.asked_share:
                continue
            weights = survey.pleased_weights if pleased else survey.displeased_weights
            lowest = survey.scale_max - len(weights) + 1
            score = self._rng.choices(range(lowest, survey.scale_max + 1), weights)[0]
            self._emit_call(
                "survey.response",
                call,
                survey=survey.name,
                score=score,
                scale_max=survey.scale_max,
                agent_id=agent.profile.agent_id,
            )
        if self._extra_rng.random() < self._centre.servqual_share:
            self._answer_servqual(call, pleased)

    def _answer_servqual(self, call: _Call, pleased: bool) -> None:
        """One SERVQUAL item (1-7): callers expect a lot; pleased ones perceive about as much."""
        rng = self._extra_rng
        dimension = rng.choice(SERVQUAL_DIMENSIONS)
        expectation = rng.choices(range(4, 8), (1, 2, 4, 4))[0]
        shortfall = rng.choices((0, 1, 2, 3), (5, 3, 1, 1) if pleased else (1, 2, 3, 3))[0]
        perception = max(expectation - shortfall, 1)
        self._emit_call("survey.response", call, survey="servqual", dimension=dimension,
                        expectation=expectation, perception=perception)  # fmt: skip

    def _agent_pulse(self) -> None:
        """An agent answers the employee-satisfaction pulse survey (1-5), busier ones lower."""
        delay_s = self._extra_rng.expovariate(self._centre.esat_per_hour / 3600.0)
        self._schedule(self._us(delay_s), self._agent_pulse)  # its own Poisson clock
        working = [a for a in self._agents if a.state in WORKING_STATES]
        if not working:
            return
        agent = self._extra_rng.choice(working)
        weights = (1, 2, 4, 6, 3) if agent.state == "available" else (2, 3, 5, 5, 2)
        score = self._extra_rng.choices(range(1, 6), weights)[0]
        self._emit("survey.response", queue=agent.profile.queues[0], survey="esat",
                   agent_id=agent.profile.agent_id, score=score, scale_max=5)  # fmt: skip

    # -- agents --------------------------------------------------------------------------------

    def _set_state(self, agent: _Agent, state: str, reason: str | None = None) -> None:
        agent.state = state
        agent.reason = reason
        agent.state_since_us = self._now_us
        self._emit_state(agent)

    def _emit_state(self, agent: _Agent) -> None:
        reason = {} if agent.reason is None else {"reason": agent.reason}
        self._emit(
            "agent.state",
            agent_id=agent.profile.agent_id,
            state=agent.state,
            queues=list(agent.profile.queues),
            **reason,
        )

    def _become_free(self, agent: _Agent) -> None:
        if agent.benched or agent.pending == "logout":
            self._log_out(agent)
        elif agent.pending == "pause":
            self._pause(agent)
        elif (call := self._oldest_call_for(agent)) is not None:
            self._waiting[call.queue.name].remove(call)
            self._answer(call, agent)
        else:
            self._set_state(agent, "available")

    def _pause_due(self, agent: _Agent) -> None:
        if agent.benched or agent.state not in WORKING_STATES:
            return
        off = sum(a.state == "paused" or a.pending == "pause" for a in self._agents)
        if off >= self._centre.max_paused_share * len(self._agents):
            # breaks are held back while too many colleagues are off, as a supervisor would
            self._schedule(self._us(PAUSE_RETRY_S), partial(self._pause_due, agent))
            return
        agent.pending = (
            "logout" if self._rng.random() < self._centre.logout_probability else "pause"
        )
        if agent.state == "available":
            self._become_free(agent)

    def _pause(self, agent: _Agent) -> None:
        agent.pending = None
        reasons = self._centre.pause_reasons
        chosen = self._rng.choices(reasons, [r.weight for r in reasons])[0]
        self._set_state(agent, "paused", chosen.reason)
        self._schedule(self._spread_us(chosen.mean_s), partial(self._resume, agent))

    def _log_out(self, agent: _Agent) -> None:
        agent.pending = None
        self._set_state(agent, "logged_out", "understaffed" if agent.benched else None)
        if not agent.benched:
            self._schedule(
                self._exp_us(self._centre.mean_logged_out_s), partial(self._resume, agent)
            )

    def _resume(self, agent: _Agent) -> None:
        if agent.benched:
            return  # understaff() logged it out meanwhile, for good
        if agent.state not in ("paused", "logged_out"):
            return  # a pause's timer outlived it: restaff() brought the agent back already
        self._become_free(agent)
        work_us = self._spread_us(self._centre.mean_work_between_pauses_s)
        self._schedule(work_us, partial(self._pause_due, agent))

    def _bench_agents(self, queue: str, factor: float) -> None:
        staffed = [
            a
            for a in self._agents
            if queue in a.profile.queues and a.state != "logged_out" and not a.benched
        ]
        keep = round(len(staffed) * factor)
        for agent in staffed[keep:]:
            agent.benched = True
            if agent.state in ("available", "paused"):
                self._log_out(agent)

    def _longest_idle_agent(self, queue: str) -> _Agent | None:
        idle = [a for a in self._agents if a.state == "available" and queue in a.profile.queues]
        return min(idle, key=lambda a: (a.state_since_us, a.order), default=None)

    def _oldest_call_for(self, agent: _Agent) -> _Call | None:
        heads = [self._waiting[q][0] for q in agent.profile.queues if self._waiting[q]]
        return min(heads, key=lambda c: (-c.queue.priority, c.offered_us), default=None)

    # -- side traffic: tickets, self-service, customers ----------------------------------------

    def _every(self, per_hour: float, action: Action) -> None:
        """Run ``action`` as a Poisson process; a zero rate never runs it."""
        if per_hour <= 0:
            return

        def tick() -> None:
            self._schedule(self._exp_us(3600.0 / per_hour), tick)
            action()

        self._schedule(self._exp_us(3600.0 / per_hour), tick)

    def _open_ticket(self) -> None:
        self._counters.ticket += 1
        ticket_id = f"t-{self._seed}-{self._counters.ticket}"
        channel = self._rng.choices(("email", "chat"), (0.6, 0.4))[0]
        queue = self._rng.choice(self._centre.queues).name
        fields = {"ticket_id": ticket_id, "channel": channel, "queue": queue}
        reported = self._now_us >= self._start_us
        self._emit_if(reported, "ticket.opened", **fields)
        first_response_us = self._exp_us(1800.0 if channel == "email" else 90.0)
        resolve_us = first_response_us + self._exp_us(14400.0 if channel == "email" else 600.0)
        self._schedule(
            first_response_us, partial(self._emit_if, reported, "ticket.first_response", **fields)
        )
        contacts = self._rng.choices((1, 2, 3), (0.7, 0.2, 0.1))[0]
        self._schedule(
            resolve_us,
            partial(self._emit_if, reported, "ticket.resolved", contacts=contacts, **fields),
        )

    def _view_article(self) -> None:
        read_s = round(self._rng.lognormvariate(math.log(60.0), 0.8), 1)
        article = f"kb-{self._rng.randint(1, 200)}"
        queue: dict[str, object] = {}
        queues = self._centre.queues
        busy = sum(q.calls_per_hour for q in queues) > 0
        if busy and self._extra_rng.random() < self._centre.kb_queue_share:  # a queue's pages
            chosen = self._extra_rng.choices(queues, [q.calls_per_hour for q in queues])[0]
            queue = {"queue": chosen.name}
        self._emit("kb.article_viewed", article_id=article, read_s=read_s, **queue)

    def _acquire_customer(self) -> None:
        self._counters.customer += 1
        customer_id = f"c-{self._counters.customer}"
        self._customers.active.append(customer_id)
        self._emit("customer.acquired", customer_id=customer_id)

    def _churn_customer(self) -> None:
        active = self._customers.active
        if len(active) <= 1:
            return  # keep someone to call
        index = self._rng.randrange(len(active))
        active[index], active[-1] = active[-1], active[index]  # O(1) removal; order is irrelevant
        self._emit("customer.churned", customer_id=active.pop())

    # -- random draws and time -----------------------------------------------------------------

    def _schedule_next_arrival(self, queue: QueueProfile) -> None:
        peak_per_hour = queue.calls_per_hour * max(queue.hourly_shape, default=1.0)
        if peak_per_hour > 0:
            self._schedule(self._exp_us(3600.0 / peak_per_hour), partial(self._arrive, queue))

    def _accepted_by_time_of_day(self, queue: QueueProfile) -> bool:
        """Thinning: arrivals are drawn at the peak rate and kept in proportion to the hour's."""
        if not queue.hourly_shape:
            return True
        hour = self._now_us // US_PER_HOUR % HOURS_PER_DAY
        return self._rng.random() * max(queue.hourly_shape) < queue.hourly_shape[hour]

    def _spread_us(self, mean_s: float) -> int:
        """Planned durations (breaks, work stints) vary around their mean but never wildly."""
        return self._us(self._rng.uniform(0.5, 1.5) * mean_s)

    def _exp_us(self, mean_s: float) -> int:
        return self._us(self._rng.expovariate(1.0 / mean_s))

    def _wait_s(self, call: _Call) -> float:
        return (self._now_us - call.offered_us) / US_PER_S

    @staticmethod
    def _us(seconds: float) -> int:
        return round(seconds * US_PER_S)
