"""Erlang C and Erlang A, checked against published values and their edge cases."""

from __future__ import annotations

import math

import pytest

from stream.kpi.erlang import (
    StaffingInput,
    erlang_a_wait_s,
    erlang_c,
    erlang_c_wait_s,
    required_agents,
    service_level,
    staffing_figures,
)

# Published worked example: Call Centre Helper, "Erlang C Formula - Made Simple With an Easy
# Worked Example" (callcentrehelper.com/erlang-c-formula-example-121281.htm): 100 calls in
# 30 minutes, AHT 180 s (A = 10 Erlangs), service level target 80 % in 20 s. The article's
# table: 11 agents 39.0 %, 12 agents 64.0 %, 13 agents 79.6 %, 14 agents 88.8 % (P_wait 17.41 %,
# ASA 7.83 s): 14 agents are required. Values are given to 0.1 % (probabilities to 0.01 %).
CCH_TRAFFIC, CCH_AHT_S, CCH_THRESHOLD_S = 10.0, 180.0, 20.0


@pytest.mark.parametrize(
    ("agents", "published_sl", "published_p_wait"),
    [
        (11, 0.390, 0.6821),  # one agent above the load: most callers wait
        (12, 0.640, 0.4494),
        (13, 0.796, 0.2853),  # just below the 80 % target
        (14, 0.888, 0.1741),  # the first staffing that meets it
    ],
)
def test_service_level_matches_the_published_table(
    agents: int, published_sl: float, published_p_wait: float
) -> None:
    assert erlang_c(agents, CCH_TRAFFIC) == pytest.approx(published_p_wait, abs=5e-5)
    sl = service_level(agents, CCH_TRAFFIC, CCH_THRESHOLD_S, CCH_AHT_S)
    assert sl == pytest.approx(published_sl, abs=5e-4)


def test_required_agents_and_asa_match_the_published_example() -> None:
    assert required_agents(CCH_TRAFFIC, CCH_THRESHOLD_S, CCH_AHT_S, 0.8) == 14
    assert erlang_c_wait_s(14, CCH_TRAFFIC, CCH_AHT_S) == pytest.approx(7.83, abs=0.01)


@pytest.mark.parametrize(
    ("agents", "traffic", "published"),
    [
        # Textbook M/M/m exercise (120 customers/h, 3 min each, m = 10, a = 6 Erlangs): "from
        # the Erlang C curve, the probability of waiting is about 0.10".
        (10, 6.0, 0.10),
        # Wolfram Language ErlangC documentation, support-centre application: 30 calls/h of
        # 5 min (a = 2.5); the minimum staff for P(delay) <= 10 % is 5 (4 gives about 32 %).
        (5, 2.5, 0.13),
        (4, 2.5, 0.32),
    ],
)
def test_probability_of_waiting_matches_textbook_curves(
    agents: int, traffic: float, published: float
) -> None:
    assert erlang_c(agents, traffic) == pytest.approx(published, abs=0.005)


@pytest.mark.parametrize(
    ("agents", "traffic", "sl", "p_wait", "wait_s"),
    [
        (0, 0.0, 0.0, 1.0, None),  # no agents, no callers: nothing is answered
        (3, 0.0, 1.0, 0.0, 0.0),  # agents and no callers: nobody waits
        (0, 2.0, 0.0, 1.0, None),  # no agents: every caller waits forever
        (5, 5.0, 0.0, 1.0, None),  # load equal to capacity: the queue never empties
        (5, 7.5, 0.0, 1.0, None),  # load above capacity
    ],
)
def test_edge_cases(
    agents: int, traffic: float, sl: float, p_wait: float, wait_s: float | None
) -> None:
    assert service_level(agents, traffic, 20, 180) == sl
    assert erlang_c(agents, traffic) == p_wait
    assert erlang_c_wait_s(agents, traffic, 180) == wait_s


@pytest.mark.parametrize(
    ("traffic", "target", "agents"),
    [
        (0.0, 0.8, 0),  # no traffic: nobody is needed
        (0.01, 0.8, 1),  # a trickle: one agent
        (10.0, 0.8, 14),  # the published example
        (10.0, 0.95, 16),  # a higher target needs more (16: 97.0 %, 15: 94.6 %)
        (300.0, 0.8, 309),  # a large centre: no overflow (the textbook formula agrees, below)
    ],
)
def test_required_agents(traffic: float, target: float, agents: int) -> None:
    assert required_agents(traffic, 20, 180, target) == agents


def _textbook_erlang_c(agents: int, traffic: float) -> float:
    """(A^N/N! N/(N-A)) / (sum_{k<N} A^k/k! + A^N/N! N/(N-A)), in log space (no overflow)."""
    logs = [k * math.log(traffic) - math.lgamma(k + 1) for k in range(agents + 1)]
    terms = [math.exp(v - max(logs)) for v in logs]  # scaled: the ratio is unchanged
    top = terms[agents] * agents / (agents - traffic)
    return top / (math.fsum(terms[:agents]) + top)


@pytest.mark.parametrize(
    ("agents", "traffic"),
    [(1, 0.5), (2, 1.9), (14, 10.0), (309, 300.0), (1000, 980.0)],  # tiny to huge centres
)
def test_erlang_c_equals_the_textbook_formula(agents: int, traffic: float) -> None:
    assert erlang_c(agents, traffic) == pytest.approx(_textbook_erlang_c(agents, traffic), rel=1e-9)


@pytest.mark.parametrize(
    ("agents", "rate", "theta"),
    [
        (14, 10 / 180, 1e-9),  # almost no abandonment: Erlang A tends to Erlang C
        (3, 2 / 180, 1e-9),  # a small team
    ],
)
def test_erlang_a_tends_to_erlang_c_without_abandonment(
    agents: int, rate: float, theta: float
) -> None:
    traffic = rate * 180
    expected = erlang_c_wait_s(agents, traffic, 180)
    assert expected is not None
    assert erlang_a_wait_s(agents, rate, 180, theta) == pytest.approx(expected, rel=1e-5)


def _erlang_a_by_hand(agents: int, rate: float, aht_s: float, theta: float) -> float:
    """Stationary birth-death chain summed directly over 5000 states (an independent check)."""
    weights = [1.0]
    for n in range(1, 5000):
        weights.append(weights[-1] * rate / (min(n, agents) / aht_s + max(n - agents, 0) * theta))
    queued = sum(max(n - agents, 0) * w for n, w in enumerate(weights))
    return queued / sum(weights) / rate


@pytest.mark.parametrize(
    ("agents", "rate", "theta"),
    [
        (2, 0.02, 1 / 120),  # overloaded (A = 3.6 on 2 agents): finite thanks to abandons
        (0, 0.01, 1 / 60),  # no agents: everyone waits until they give up
        (10, 10 / 180, 1 / 300),  # a normal day
    ],
)
def test_erlang_a_matches_the_chain_summed_by_hand(agents: int, rate: float, theta: float) -> None:
    assert erlang_a_wait_s(agents, rate, 180, theta) == pytest.approx(
        _erlang_a_by_hand(agents, rate, 180, theta), rel=1e-9
    )


def test_erlang_a_without_arrivals() -> None:
    assert erlang_a_wait_s(2, 0.0, 180, 0.01) == 0.0  # an agent is there
    assert erlang_a_wait_s(0, 0.0, 180, 0.01) == 100.0  # alone: waits its mean patience


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (  # no ended call in the window: no AHT, nothing to predict
            StaffingInput(0.05, None, 5, 20, 0.8, None),
            {"required_agents": None, "predicted_service_level": None, "expected_wait_s": None},
        ),
        (  # no callers and no agents: no prediction; nobody needed
            StaffingInput(0.0, 180, 0, 20, 0.8, None),
            {"required_agents": 0, "predicted_service_level": None, "expected_wait_s": None},
        ),
        (  # above capacity without abandonment: unbounded wait (null), service level 0
            StaffingInput(10 / 180, 180, 9, 20, 0.8, None),
            {"required_agents": 14, "predicted_service_level": 0.0, "expected_wait_s": None},
        ),
    ],
)
def test_staffing_figures_edges(given: StaffingInput, expected: dict[str, object]) -> None:
    assert staffing_figures(given) == expected


def test_staffing_figures_use_erlang_a_when_abandonment_is_known() -> None:
    given = StaffingInput(10 / 180, 180, 9, 20, 0.8, 1 / 120)
    figures = staffing_figures(given)
    wait = figures["expected_wait_s"]
    assert isinstance(wait, float) and math.isfinite(wait) and wait > 0
    assert wait == pytest.approx(_erlang_a_by_hand(9, 10 / 180, 180, 1 / 120), rel=1e-9)
    assert figures["predicted_service_level"] == 0.0  # the SL stays Erlang C's (KPIS.md)
