"""What a contact centre looks like to the simulator: queues, agents, pauses, surveys.

The profile types are plain frozen data; ``default_centre`` is a mid-sized centre whose figures
look like a normal day from the first minute (service level ~80 % at 20 s, a few % abandoned).
"""

from __future__ import annotations

from dataclasses import dataclass

HOURS_PER_DAY = 24


@dataclass(frozen=True)
class QueueProfile:
    """One queue's traffic and handling; probabilities are per call, durations are means."""

    name: str
    calls_per_hour: float
    mean_talk_s: float
    mean_patience_s: float
    max_wait_s: float
    mean_acw_s: float = 45.0
    talk_sigma: float = 0.6  # lognormal shape: a realistic long tail of difficult calls
    hold_probability: float = 0.15
    mean_hold_s: float = 45.0
    transfer_probability: float = 0.0
    transfer_to: tuple[str, ...] = ()
    priority: int = 0  # higher is served first when an agent with several skills frees up
    hourly_shape: tuple[float, ...] = ()  # 24 arrival multipliers by UTC hour; empty is flat
    resolve_probability: float = 0.8
    survey_probability: float = 0.2

    def __post_init__(self) -> None:
        if self.hourly_shape and len(self.hourly_shape) != HOURS_PER_DAY:
            raise ValueError(f"queue {self.name}: hourly_shape needs 24 values")
        if self.calls_per_hour < 0 or min(self.mean_talk_s, self.mean_patience_s) <= 0:
            raise ValueError(f"queue {self.name}: rates and means must be positive")
        if self.name in self.transfer_to:
            # the same (queue, call_id) offered twice would count once (docs/SEMANTICS.md)
            raise ValueError(f"queue {self.name}: a call cannot be transferred to its own queue")


@dataclass(frozen=True)
class AgentProfile:
    agent_id: str
    queues: tuple[str, ...]


@dataclass(frozen=True)
class PauseReason:
    """A kind of pause: how often it is chosen (relative weight) and how long it lasts."""

    reason: str
    weight: float
    mean_s: float


@dataclass(frozen=True)
class SurveyProfile:
    """One post-call survey question; weights are per score, lowest score first."""

    name: str
    scale_max: int
    asked_share: float
    pleased_weights: tuple[int, ...]
    displeased_weights: tuple[int, ...]


DEFAULT_SURVEYS = (
    SurveyProfile("csat", 5, 1.0, (2, 3, 8, 32, 55), (20, 18, 22, 25, 15)),
    SurveyProfile(
        "nps",
        10,
        0.5,
        (1, 1, 1, 1, 1, 2, 3, 8, 18, 30, 34),
        (8, 6, 8, 9, 10, 12, 12, 12, 10, 7, 6),
    ),
    # CES 2.0 wording ("it was easy to handle my issue"): 7 is the best score
    SurveyProfile("ces", 7, 0.4, (1, 2, 4, 8, 20, 35, 30), (10, 15, 20, 20, 15, 12, 8)),
)


@dataclass(frozen=True)
class CentreProfile:
    """Queues, agents and their habits, and the low-rate side traffic (tickets, kb, customers)."""

    queues: tuple[QueueProfile, ...]
    agents: tuple[AgentProfile, ...]
    caller_population: int = 5000
    channel_weights: tuple[tuple[str, float], ...] = (("voice", 0.95), ("callback", 0.05))
    mean_work_between_pauses_s: float = 5400.0
    pause_reasons: tuple[PauseReason, ...] = (
        PauseReason("break", 0.75, 600.0),
        PauseReason("lunch", 0.15, 1800.0),
        PauseReason("coaching", 0.10, 900.0),
    )
    max_paused_share: float = 0.12  # at most this share of all agents on a break at once
    logout_probability: float = 0.1  # share of pauses that are a log-out instead
    mean_logged_out_s: float = 1200.0
    tickets_per_hour: float = 12.0
    kb_views_per_hour: float = 30.0
    customers_acquired_per_hour: float = 2.0
    customers_churned_per_hour: float = 1.0
    warmup_s: float = 1800.0  # silent run before start_us, so the centre starts in steady state
    surveys: tuple[SurveyProfile, ...] = DEFAULT_SURVEYS
    mean_survey_delay_s: float = 120.0  # the post-call IVR survey comes a little after hang-up
    disposition_share: float = 0.9  # agents leave a few calls without a resolution code
    # Catalogue traffic: dispositions that say whether it was the first contact (the others are
    # left to the repeat-caller rule), post-call SERVQUAL questions, agents' own pulse survey,
    # and article views from a queue's self-service pages.
    first_contact_flag_share: float = 0.5
    servqual_share: float = 0.3
    esat_per_hour: float = 6.0
    kb_queue_share: float = 0.7

    def __post_init__(self) -> None:
        names = [queue.name for queue in self.queues]
        if len(set(names)) != len(names):
            raise ValueError("queue names must be unique")
        wanted = {q for a in self.agents for q in a.queues}
        wanted |= {q for queue in self.queues for q in queue.transfer_to}
        if unknown := wanted - set(names):
            raise ValueError(f"skills or transfers name unknown queues: {sorted(unknown)}")


# (skills, agents at scale 1): mostly specialists; blended agents absorb the peaks of every queue.
# Tuned on 16 seeds x 2 h: service level ~80 % at 20 s (one run: 66-90 %), ~3.5 % abandoned,
# ASA ~11 s, AHT ~5 min, one or two calls waiting at a time.
_DEFAULT_AGENT_GROUPS: tuple[tuple[tuple[str, ...], int], ...] = (
    (("sales",), 11),
    (("support",), 18),
    (("billing",), 6),
    (("vip",), 2),
    (("vip", "sales"), 2),
    (("support", "billing"), 4),
    (("vip", "sales", "support", "billing"), 5),
)


def default_queues(scale: float = 1.0) -> tuple[QueueProfile, ...]:
    return (
        QueueProfile(
            "sales",
            130 * scale,
            mean_talk_s=240,
            mean_patience_s=300,
            max_wait_s=600,
            mean_acw_s=40,
            transfer_probability=0.04,
            transfer_to=("billing",),
        ),
        QueueProfile(
            "support",
            170 * scale,
            mean_talk_s=300,
            mean_patience_s=330,
            max_wait_s=900,
            mean_acw_s=60,
            hold_probability=0.25,
            transfer_probability=0.05,
            transfer_to=("billing",),
            resolve_probability=0.72,
        ),
        QueueProfile(
            "billing",
            70 * scale,
            mean_talk_s=210,
            mean_patience_s=300,
            max_wait_s=600,
            mean_acw_s=45,
            transfer_probability=0.03,
            transfer_to=("support",),
        ),
        QueueProfile(
            "vip",
            25 * scale,
            mean_talk_s=270,
            mean_patience_s=420,
            max_wait_s=300,
            mean_acw_s=45,
            priority=1,
            resolve_probability=0.88,
            survey_probability=0.3,
        ),
    )


def default_agents(scale: float = 1.0) -> tuple[AgentProfile, ...]:
    """Every skill group keeps at least one agent, so no queue is left unstaffed at small scale."""
    agents: list[AgentProfile] = []
    for skills, count in _DEFAULT_AGENT_GROUPS:
        for _ in range(max(1, round(count * scale))):
            agents.append(AgentProfile(f"a-{len(agents) + 1:03d}", skills))
    return tuple(agents)


def default_centre(scale: float = 1.0) -> CentreProfile:
    """The default centre; ``scale`` multiplies call volume, agents and side traffic."""
    if scale <= 0:
        raise ValueError("scale must be positive")
    return CentreProfile(
        queues=default_queues(scale),
        agents=default_agents(scale),
        caller_population=max(100, round(5000 * scale)),
        tickets_per_hour=12.0 * scale,
        kb_views_per_hour=30.0 * scale,
        customers_acquired_per_hour=2.0 * scale,
        customers_churned_per_hour=1.0 * scale,
    )
