"""Erlang C and Erlang A: staffing and waiting predicted from the arrival rate and handle time.

Erlang C (M/M/N) assumes callers never give up: with A = arrival rate x AHT Erlangs and N > A
agents, a caller waits with probability C(N, A), and the service level for threshold T is
``1 - C(N, A) * exp(-(N - A) * T / AHT)``. With N <= A the queue grows without bound.

Erlang A (M/M/N+M, Palm's model) adds exponential patience with rate theta (1 / mean patience):
callers who wait too long abandon, so the queue is stable at any load. Its expected wait comes
from the birth-death chain of the number of calls in the system, summed until the tail is
negligible (no closed form is needed, so no further approximation than that cut-off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The search for the required agents stops here (a target that needs more is unreachable).
MAX_AGENTS = 100_000
# The Erlang A tail is summed until a term is below this share of the running total.
_TAIL_EPSILON = 1e-15
_MAX_TAIL_STATES = 1_000_000


def erlang_b(agents: int, traffic: float) -> float:
    """Blocking probability B(N, A), by the stable recursion B(k) = A B(k-1) / (k + A B(k-1))."""
    blocking = 1.0
    for k in range(1, agents + 1):
        blocking = traffic * blocking / (k + traffic * blocking)
    return blocking


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a caller waits, C(N, A); 1.0 when N <= A (every caller waits)."""
    if traffic <= 0:
        return 0.0 if agents > 0 else 1.0
    if agents <= traffic:
        return 1.0
    blocking = erlang_b(agents, traffic)
    return agents * blocking / (agents - traffic * (1.0 - blocking))


def service_level(agents: int, traffic: float, threshold_s: float, aht_s: float) -> float:
    """Share of callers answered within ``threshold_s``; 0.0 when N <= A (unbounded queue)."""
    if traffic <= 0:
        return 1.0 if agents > 0 else 0.0
    if agents <= traffic:
        return 0.0
    waits = erlang_c(agents, traffic)
    return 1.0 - waits * math.exp(-(agents - traffic) * threshold_s / aht_s)


def erlang_c_wait_s(agents: int, traffic: float, aht_s: float) -> float | None:
    """Expected wait of a new caller (ASA over all callers); None when unbounded (N <= A)."""
    if traffic <= 0:
        return 0.0 if agents > 0 else None
    if agents <= traffic:
        return None
    return erlang_c(agents, traffic) * aht_s / (agents - traffic)


def required_agents(traffic: float, threshold_s: float, aht_s: float, target: float) -> int | None:
    """Smallest N whose Erlang C service level reaches ``target``; 0 without traffic."""
    if traffic <= 0:
        return 0
    agents = math.floor(traffic) + 1
    while agents <= MAX_AGENTS:
        if service_level(agents, traffic, threshold_s, aht_s) >= target:
            return agents
        agents += 1
    return None


def erlang_a_wait_s(
    agents: int, arrival_per_s: float, aht_s: float, patience_rate_per_s: float
) -> float:
    """Expected time in queue of a new caller (answered or not) in the M/M/N+M model.

    State n = calls in the system: arrivals at rate lambda, departures at
    ``min(n, N) / AHT + max(n - N, 0) * theta``. Little's law on the queue gives the mean wait
    ``E[queue length] / lambda``. Without arrivals a caller is alone: no wait if an agent is
    there, else it waits until it gives up (mean patience).
    """
    if arrival_per_s <= 0:
        return 0.0 if agents > 0 else 1.0 / patience_rate_per_s
    service_rate = 1.0 / aht_s
    # Unnormalised probabilities, rescaled whenever they grow large (no overflow at any N).
    term, total, queued = 1.0, 1.0, 0.0
    n = 0
    while n < agents + _MAX_TAIL_STATES:
        n += 1
        departures = min(n, agents) * service_rate + max(n - agents, 0) * patience_rate_per_s
        term *= arrival_per_s / departures
        total += term
        queued += max(n - agents, 0) * term
        if n > agents and term < _TAIL_EPSILON * total:
            break
        if total > 1e250:
            term, total, queued = term / total, 1.0, queued / total
    return queued / total / arrival_per_s


@dataclass(frozen=True, slots=True)
class StaffingInput:
    """What the staffing figures are computed from, all known at read time."""

    arrival_per_s: float  # offered in the last 15 minutes / their seconds
    aht_s: float | None  # the window's average handle time
    agents: int  # agents able to take calls now (logged in and not paused)
    threshold_s: float
    target: float
    patience_rate_per_s: float | None  # None: no abandonment known (Erlang C)


def staffing_figures(given: StaffingInput) -> dict[str, float | int | None]:
    """``required_agents``, ``predicted_service_level``, ``expected_wait_s`` (KPIS.md)."""
    if given.aht_s is None or given.aht_s <= 0:
        return {"required_agents": None, "predicted_service_level": None, "expected_wait_s": None}
    traffic = given.arrival_per_s * given.aht_s
    predicted: float | None = service_level(given.agents, traffic, given.threshold_s, given.aht_s)
    if traffic <= 0 and given.agents == 0:
        predicted = None  # no callers and nobody to answer: nothing to predict
    if given.patience_rate_per_s:
        wait: float | None = erlang_a_wait_s(
            given.agents, given.arrival_per_s, given.aht_s, given.patience_rate_per_s
        )
    else:
        wait = erlang_c_wait_s(given.agents, traffic, given.aht_s)
    return {
        "required_agents": required_agents(traffic, given.threshold_s, given.aht_s, given.target),
        "predicted_service_level": predicted,
        "expected_wait_s": wait,
    }
