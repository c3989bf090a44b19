"""KPI endpoints over the hand-made scenario of ``apifixtures`` (read its diagram first).

Every expected figure is worked out by hand from the scenario, in the row that asserts it.
Windows are ``[start, end)`` with ``end`` aligned down to the minute; the live window (no ``at``)
ends at the end of the current minute::

    09:55          10:00   10:01   10:02   10:03   10:04   10:05   10:06   10:07 ..  10:10
      |--------------- 15m window at 10:10 -----------------------------------------------|
                            c1 o a  c3 o|a  c4 o    c5 o x  c2 end  surveys
                            c2 o a      c2 xfer c1 end, wrap
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from stream.kpi.config import CentreConfig, QueueConfig
from stream.kpi.timeutil import US_PER_S
from stream.kpi.windows import live_end_us
from tests.unit.apifixtures import (
    CENTRE,
    CONTRACT_KPI_FIELDS,
    COUNT_FIELDS,
    MIDNIGHT_US,
    NULLABLE_FIELDS,
    SALES_THRESHOLD_S,
    T0_US,
    TestClient,
    build_services,
    client_for,
    hms,
    iso,
    s,
    scenario_client,
    scenario_events,
)

KPI_SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "schemas" / "kpi.schema.json").read_text("utf-8")
)
AT_1010 = iso(hms("10:10:00"))
AGENT_STATES = {"available", "on_call", "acw", "paused", "logged_out", "logged_in"}
# a1 available (since 10:03:30), a2 on_call, a3 paused, a4 logged_out; a5 never sent a state
AGENTS_AT_1010 = {"available": 1, "on_call": 1, "acw": 0, "paused": 1, "logged_out": 1,
                  "logged_in": 3}  # fmt: skip


@pytest.fixture(scope="module")
def client() -> TestClient:
    return scenario_client()


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> int:
    """The API's clock stopped at 10:10:30 on the scenario's day."""
    now = hms("10:10:30")
    monkeypatch.setattr("api.clock.now_us", lambda: now)
    return now


def get_json(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(path, params={k: v for k, v in params.items() if v is not None})
    assert response.status_code == 200, response.text
    return response.json()


def sales(client: TestClient, **params: Any) -> dict[str, Any]:
    kpis: dict[str, Any] = get_json(client, "/v1/queues/sales/kpis", **params)
    return kpis


def assert_schema_valid(kpis: dict[str, Any]) -> None:
    validator = Draft202012Validator(KPI_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(kpis)]
    assert not errors, errors


# -- the KPI object -----------------------------------------------------------------------------


def test_queue_kpis_carry_every_contract_field(client: TestClient) -> None:
    kpis = sales(client, window="15m", at=AT_1010)
    assert kpis.keys() >= CONTRACT_KPI_FIELDS, CONTRACT_KPI_FIELDS - kpis.keys()
    assert set(kpis["agents"]) == AGENT_STATES


# 15m at 10:10 = [09:55, 10:10): c1..c5 and everything after them; c0 (08:00) is out.
# Waits: answered 10 (derived) and 25 (wait_s); abandoned 3 (short); exited 40 (in no wait).
FIFTEEN_MINUTES_AT_1010 = [
    ("queue", "sales"),
    ("window", "15m"),
    ("start", "2024-03-01T09:55:00Z"),
    ("end", "2024-03-01T10:10:00Z"),
    ("offered", 5),  # c1..c5; c0 is two hours earlier
    ("answered", 2),
    ("abandoned", 1),
    ("short_abandoned", 1),  # 3 s < 5 s
    ("exited", 1),
    ("answered_in_threshold", 2),  # 10 <= 25 and 25 <= 25: the threshold itself is in
    ("service_level", 2 / (2 + 1 - 1)),  # A_T / (A + B - short abandons)
    ("service_level_threshold_s", SALES_THRESHOLD_S),
    ("answer_rate", 2 / (2 + 1 + 1)),  # A / (A + B + X)
    ("abandon_rate", 1 / (2 + 1 + 1)),
    ("asa_s", (10 + 25) / 2),
    ("avg_wait_s", (10 + 25 + 3) / 3),  # the exited call's 40 s is in no wait figure
    ("max_wait_s", 25.0),
    ("avg_abandon_s", 3.0),
    ("aht_s", (110 + 10 + 200 + 0) / 2 + 30 / 1),  # (talk + hold) / ended + acw / wrap-ups
    ("avg_talk_s", (110 + 200) / 2),
    ("avg_hold_s", (10 + 0) / 2),  # c2's hold_s defaults to 0
    ("avg_acw_s", 30.0),
    ("transferred", 1),
    ("transfer_rate", 1 / 2),  # transferred / answered
    ("calls_waiting", 1),  # c4
    ("longest_wait_s", 7 * 60.0),  # 10:10 - 10:03
    ("agents", AGENTS_AT_1010),
    ("csat", 1 / 2),  # 5 >= 5 - 1 satisfied, 3 not
    ("nps", 100 * (1 - 1) / 2),  # one promoter (10), one detractor (5)
    ("ces", (2 + 4) / 2),
    ("fcr_rate", 1 / 2),  # c2 resolved but not on first contact
    ("service_level_target", 0.8),
    ("sl_formula", "answered_and_abandoned"),
]


@pytest.mark.parametrize(("field", "expected"), FIFTEEN_MINUTES_AT_1010)
def test_queue_kpis_match_the_hand_computed_figures(
    client: TestClient, field: str, expected: Any
) -> None:
    kpis = sales(client, window="15m", at=AT_1010)
    assert kpis[field] == (pytest.approx(expected) if isinstance(expected, float) else expected)


def test_kpi_objects_validate_against_the_schema(client: TestClient) -> None:
    objects = [sales(client, window=w, at=AT_1010) for w in ("5m", "15m", "30m", "1h", "today")]
    objects.append(sales(client, window="15m", at=iso(hms("09:00:00"))))  # empty window
    centre = get_json(client, "/v1/kpis", window="15m", at=AT_1010)
    objects += [*centre["queues"], centre["total"]]
    objects += get_json(client, "/v1/queues/sales/intervals", start=iso(hms("09:45:00")),
                        end=AT_1010)  # fmt: skip
    for kpis in objects:
        assert_schema_valid(kpis)


# -- windows and `at` ---------------------------------------------------------------------------

PAST_WINDOWS = [
    # (window, at, expected figures)
    # c3 (offered 10:01:58, abandoned 10:02:01) is waiting at 10:02:00 though it is over now
    ("5m", "2024-03-01T10:02:00Z", {"end": "2024-03-01T10:02:00Z", "offered": 3, "answered": 2,
                                    "abandoned": 0, "calls_waiting": 1, "longest_wait_s": 2.0}),
    # `at` inside a minute: the window ends at that minute's start
    ("5m", "2024-03-01T10:02:59.999Z", {"end": "2024-03-01T10:02:00Z", "offered": 3}),
    # the same instant with an offset
    ("5m", "2024-03-01T11:02:00+01:00", {"end": "2024-03-01T10:02:00Z", "offered": 3}),
    # c4 is offered at 10:03:00 exactly: not yet waiting at 10:03:00, nobody is -> null
    ("5m", "2024-03-01T10:03:00Z", {"start": "2024-03-01T09:58:00Z", "abandoned": 1,
                                    "short_abandoned": 1, "calls_waiting": 0,
                                    "longest_wait_s": None}),
    # c5 offered at 10:04:00 exactly is not waiting at 10:04:00; c4 has waited 60 s
    ("5m", "2024-03-01T10:04:30Z", {"calls_waiting": 1, "longest_wait_s": 60.0}),
    # [10:00, 10:05): every call offered, c5 exited 10:04:40, c2 not yet ended
    ("5m", "2024-03-01T10:05:00Z", {"offered": 5, "exited": 1, "aht_s": 150.0,
                                    "longest_wait_s": 120.0}),
    # [10:05, 10:10): only c2's end, surveys and resolutions
    ("5m", AT_1010, {"offered": 0, "answered": 0, "service_level": None, "asa_s": None,
                     "aht_s": 200.0, "avg_acw_s": None, "transfer_rate": None, "csat": 0.5}),
    # an hour back from 10:10 still misses c0 (08:00)
    ("1h", AT_1010, {"start": "2024-03-01T09:10:00Z", "offered": 5, "answered": 2}),
    # today holds c0 too: answered waits 10, 25 and 40
    ("today", AT_1010, {"start": "2024-03-01T00:00:00Z", "offered": 6, "answered": 3,
                        "answered_in_threshold": 2, "service_level": 2 / (3 + 1 - 1),
                        "asa_s": (10 + 25 + 40) / 3, "max_wait_s": 40.0}),
    # today at exactly midnight is the empty window [end, end)
    ("today", "2024-03-02T00:00:00Z", {"start": "2024-03-02T00:00:00Z",
                                       "end": "2024-03-02T00:00:00Z", "offered": 0,
                                       "service_level": None}),
    # the next day's today holds none of it
    ("today", "2024-03-02T00:01:00Z", {"start": "2024-03-02T00:00:00Z", "offered": 0}),
]  # fmt: skip


@pytest.mark.parametrize(("window", "at", "expected"), PAST_WINDOWS)
def test_past_windows(client: TestClient, window: str, at: str, expected: dict[str, Any]) -> None:
    kpis = sales(client, window=window, at=at)
    assert kpis["window"] == window
    assert {field: kpis[field] for field in expected} == expected


def test_window_defaults_to_15m(client: TestClient) -> None:
    kpis = sales(client, at=AT_1010)
    assert (kpis["window"], kpis["start"]) == ("15m", "2024-03-01T09:55:00Z")


@pytest.mark.parametrize(
    ("threshold_s", "in_threshold", "service_level"),
    [
        (None, 2, 1.0),  # the queue's own 25 s
        (25, 2, 1.0),  # the 25 s wait is exactly at the threshold: in
        (24, 1, 0.5),  # ... and one second under it: out
        (10, 1, 0.5),  # the 10 s wait exactly at the threshold
        (9, 0, 0.0),  # below every wait: 0, not null (there are answered calls)
        (0, 0, 0.0),  # the lowest threshold allowed
        (3600, 2, 1.0),  # the highest
    ],
)
def test_threshold_s_changes_the_service_level(
    client: TestClient, threshold_s: int | None, in_threshold: int, service_level: float
) -> None:
    kpis = sales(client, window="15m", at=AT_1010, threshold_s=threshold_s)
    assert kpis["service_level_threshold_s"] == (threshold_s if threshold_s is not None else 25)
    assert kpis["answered_in_threshold"] == in_threshold
    assert kpis["service_level"] == service_level
    total = get_json(client, "/v1/kpis", window="15m", at=AT_1010, threshold_s=threshold_s)
    assert total["total"]["service_level"] == service_level  # sales is the only busy queue


@pytest.mark.parametrize("at", ["2024-03-01T09:00:00Z", "2024-03-01T10:30:00Z"])
def test_empty_window_has_null_ratios_and_zero_counts(client: TestClient, at: str) -> None:
    # 09:00: before every call; 10:30: after every event of the 15 minutes (c4 still waits)
    kpis = sales(client, window="15m", at=at)
    waiting = at.endswith("10:30:00Z")
    assert {f: kpis[f] for f in COUNT_FIELDS} == {f: int(waiting and f == "calls_waiting")
                                                  for f in COUNT_FIELDS}  # fmt: skip
    nulls = [f for f in NULLABLE_FIELDS if f != "longest_wait_s" or not waiting]
    assert {f: kpis[f] for f in nulls} == dict.fromkeys(nulls)


def test_configured_queue_without_events_answers_with_nulls(client: TestClient) -> None:
    kpis = get_json(client, "/v1/queues/support/kpis", window="today", at=AT_1010)
    assert {f: kpis[f] for f in NULLABLE_FIELDS} == dict.fromkeys(NULLABLE_FIELDS)
    assert kpis["service_level_threshold_s"] == 20  # the centre default
    assert kpis["agents"] == dict.fromkeys(AGENT_STATES, 0)  # every agent is in sales only


def test_today_starts_at_midnight_in_the_queue_zone() -> None:
    centre = CentreConfig(queues={"sales": QueueConfig(threshold_s=25, timezone="Asia/Kolkata")})
    client = client_for(build_services(scenario_events(), now_us=T0_US + s(3600), centre=centre))
    kpis = sales(client, window="today", at=AT_1010)
    # 10:10Z is 15:40 in Kolkata (+05:30): the local day began at 18:30Z the day before
    assert kpis["start"] == "2024-02-29T18:30:00Z"
    assert kpis["offered"] == 6


# -- the live window (no `at`) ------------------------------------------------------------------


def test_live_window_ends_at_the_end_of_the_current_minute() -> None:
    now = time.time_ns() // 1000
    events = [
        {"event_id": "o", "type": "call.offered", "ts": iso(now - s(90)), "queue": "sales",
         "call_id": "c1"},
        {"event_id": "a", "type": "call.answered", "ts": iso(now), "queue": "sales",
         "call_id": "c1", "agent_id": "a1"},
    ]  # fmt: skip
    client = client_for(build_services(events, now_us=now))
    before = time.time_ns() // 1000
    live = sales(client, window="5m")
    after = time.time_ns() // 1000
    assert live["end"] in {iso(live_end_us(before)), iso(live_end_us(after))}
    assert (live["offered"], live["answered"]) == (1, 1)  # the answer of this minute is in
    # the same moment as an explicit `at`: the window ends at this minute's start, without it
    assert sales(client, window="5m", at=iso(now))["answered"] == 0


def test_live_window_with_the_clock_at_1010_30(client: TestClient, frozen_clock: int) -> None:
    kpis = sales(client, window="15m")
    assert (kpis["start"], kpis["end"]) == ("2024-03-01T09:56:00Z", "2024-03-01T10:11:00Z")
    assert (kpis["offered"], kpis["service_level"]) == (5, 1.0)


def test_live_longest_wait_is_the_age_of_the_oldest_call_now(
    client: TestClient, frozen_clock: int
) -> None:
    # c4 was offered at 10:03:00; at 10:10:30 it has waited 450 s, not the 480 s it will have
    # waited at 10:11:00, the end of the live window (and /metrics says 450).
    kpis = sales(client, window="15m")
    assert kpis["calls_waiting"] == 1
    assert kpis["longest_wait_s"] == pytest.approx((frozen_clock - hms("10:03:00")) / US_PER_S)


# -- the whole centre ---------------------------------------------------------------------------


def test_centre_kpis_list_every_queue_and_the_total(client: TestClient) -> None:
    centre = get_json(client, "/v1/kpis", window="15m", at=AT_1010)
    assert set(centre) == {"window", "start", "end", "queues", "total"}
    assert (centre["window"], centre["start"], centre["end"]) == (
        "15m", "2024-03-01T09:55:00Z", "2024-03-01T10:10:00Z")  # fmt: skip
    assert [q["queue"] for q in centre["queues"]] == ["sales", "support"]
    assert centre["queues"][0] == sales(client, window="15m", at=AT_1010)
    for kpis in (*centre["queues"], centre["total"]):
        assert kpis.keys() >= CONTRACT_KPI_FIELDS


TOTAL_AT_1010 = [
    ("queue", None),
    ("offered", 5),
    ("answered", 2),
    ("abandoned", 1),
    ("short_abandoned", 1),
    ("answered_in_threshold", 2),  # each queue's own threshold: 25 s for sales
    ("service_level", 1.0),
    ("abandon_rate", 0.25),
    ("asa_s", 17.5),
    ("aht_s", 190.0),
    ("calls_waiting", 1),
    ("longest_wait_s", 420.0),
    ("agents", AGENTS_AT_1010),
]


@pytest.mark.parametrize(("field", "expected"), TOTAL_AT_1010)
def test_centre_total(client: TestClient, field: str, expected: Any) -> None:
    total = get_json(client, "/v1/kpis", window="15m", at=AT_1010)["total"]
    assert total[field] == expected


def test_centre_kpis_today(client: TestClient) -> None:
    centre = get_json(client, "/v1/kpis", window="today", at=AT_1010)
    assert centre["start"] == "2024-03-01T00:00:00Z"
    assert (centre["total"]["offered"], centre["total"]["answered"]) == (6, 3)


# -- fixed intervals ----------------------------------------------------------------------------


def intervals(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    answer: list[dict[str, Any]] = get_json(client, "/v1/queues/sales/intervals", **params)
    return answer


@pytest.mark.parametrize(
    ("size", "start", "end", "bounds"),
    [
        ("15m", "10:00:00", "10:30:00", [("10:00", "10:15"), ("10:15", "10:30")]),
        ("30m", "10:00:00", "10:30:00", [("10:00", "10:30")]),
        # unaligned bounds: every interval that overlaps them, whole
        ("15m", "10:05:00", "10:20:00", [("10:00", "10:15"), ("10:15", "10:30")]),
        ("30m", "09:59:00", "10:01:00", [("09:30", "10:00"), ("10:00", "10:30")]),
    ],
)
def test_intervals_are_aligned_fixed_windows(
    client: TestClient, size: str, start: str, end: str, bounds: list[tuple[str, str]]
) -> None:
    answer = intervals(client, size=size, start=iso(hms(start)), end=iso(hms(end)))
    assert [(i["start"], i["end"]) for i in answer] == [
        (iso(hms(f"{a}:00")), iso(hms(f"{b}:00"))) for a, b in bounds
    ]
    assert {i["window"] for i in answer} == {size}
    for item in answer:
        assert item.keys() >= CONTRACT_KPI_FIELDS


def test_interval_figures(client: TestClient) -> None:
    first, second = intervals(client, size="15m", start=iso(hms("10:00:00")),
                              end=iso(hms("10:30:00")))  # fmt: skip
    # [10:00, 10:15): every call of the scenario but c0; c4 has waited 12 min at 10:15
    assert (first["offered"], first["answered"], first["service_level"]) == (5, 2, 1.0)
    assert (first["calls_waiting"], first["longest_wait_s"]) == (1, 720.0)
    # [10:15, 10:30): nothing happens, c4 still waits (27 min at 10:30)
    assert (second["offered"], second["service_level"], second["asa_s"]) == (0, None, None)
    assert (second["calls_waiting"], second["longest_wait_s"]) == (1, 1620.0)
    thirty = intervals(client, size="30m", start=iso(hms("10:00:00")), end=iso(hms("10:30:00")))
    assert thirty[0]["offered"] == 5
    assert intervals(client, size="15m", start=iso(hms("10:00:00")), end=iso(hms("10:15:00")),
                     threshold_s=24)[0]["service_level"] == 0.5  # fmt: skip


def test_intervals_of_a_day_add_up_to_today(client: TestClient) -> None:
    day = intervals(client, size="15m", start=iso(MIDNIGHT_US), end=iso(hms("10:30:00")))
    assert len(day) == 42  # 10.5 h of quarter hours
    today = sales(client, window="today", at=iso(hms("10:30:00")))
    for field in ("offered", "answered", "abandoned", "exited", "answered_in_threshold"):
        assert sum(i[field] for i in day) == today[field], field


def test_interval_defaults_are_15m_from_local_midnight_to_now(
    client: TestClient, frozen_clock: int
) -> None:
    day = intervals(client)
    # the live end is 10:11:00: quarter hours 00:00, 00:15, ..., 10:00
    assert [i["start"] for i in day[:2]] == ["2024-03-01T00:00:00Z", "2024-03-01T00:15:00Z"]
    assert day[-1]["start"] == "2024-03-01T10:00:00Z"
    assert len(day) == 41
    assert {i["window"] for i in day} == {"15m"}


@pytest.mark.parametrize(
    ("size", "starts"),
    [
        ("15m", ["10:00", "10:15", "10:30", "10:45"]),  # +05:45 keeps quarter hours aligned
        ("30m", ["09:45", "10:15", "10:45"]),  # local :00 and :30 are :15 and :45 UTC
    ],
)
def test_intervals_align_to_the_local_clock(size: str, starts: list[str]) -> None:
    centre = CentreConfig(queues={"sales": QueueConfig(timezone="Asia/Kathmandu")})
    client = client_for(build_services(scenario_events(), now_us=T0_US + s(3600), centre=centre))
    answer = intervals(client, size=size, start=iso(hms("10:00:00")), end=iso(hms("11:00:00")))
    assert [i["start"] for i in answer] == [iso(hms(f"{t}:00")) for t in starts]


# -- agents -------------------------------------------------------------------------------------


def test_agents_list_every_agent_with_a_state(client: TestClient) -> None:
    listing = get_json(client, "/v1/agents", at=AT_1010)["agents"]
    assert listing == [
        {"agent_id": "a1", "state": "available", "queues": ["sales"],
         "since": "2024-03-01T10:03:30Z"},
        {"agent_id": "a2", "state": "on_call", "queues": ["sales"],
         "since": "2024-03-01T10:01:30Z"},
        {"agent_id": "a3", "state": "paused", "queues": ["sales"],
         "since": "2024-03-01T09:58:00Z"},
        {"agent_id": "a4", "state": "logged_out", "queues": ["sales"],
         "since": "2024-03-01T09:50:00Z"},
    ]  # fmt: skip  # a5 answered a call but never sent a state


def test_agents_live_default(client: TestClient) -> None:
    listing = get_json(client, "/v1/agents")["agents"]
    assert [(a["agent_id"], a["state"]) for a in listing] == [
        ("a1", "available"), ("a2", "on_call"), ("a3", "paused"), ("a4", "logged_out")]  # fmt: skip


def test_agents_before_any_state_are_empty(client: TestClient) -> None:
    assert get_json(client, "/v1/agents", at="2024-03-01T09:00:00Z") == {"agents": []}


@pytest.mark.parametrize(
    ("at", "state"),
    [
        ("2024-03-01T10:02:59Z", "on_call"),
        # SEMANTICS.md: the state at t is that of the latest change with ts < t, strictly, as
        # the `agents` of the KPI object and /v1/agents/{agent}/kpis count it
        ("2024-03-01T10:03:00Z", "on_call"),
        ("2024-03-01T10:03:00.000001Z", "acw"),
    ],
)
def test_agent_state_at_a_change_is_the_state_before_it(
    client: TestClient, at: str, state: str
) -> None:
    listing = {a["agent_id"]: a for a in get_json(client, "/v1/agents", at=at)["agents"]}
    assert listing["a1"]["state"] == state


AGENT_KPIS = [
    # a1: answered c1 (10 s), ended it (talk 110, hold 10), wrapped up (acw 30), csat 5
    ("a1", "15m", {"answered": 1, "ended": 1, "aht_s": 110 + 10 + 30.0, "avg_talk_s": 110.0,
                   "avg_hold_s": 10.0, "avg_acw_s": 30.0, "transferred": 0, "csat": 1.0,
                   "state": "available", "queues": ["sales"]}),
    # a2: answered c2, transferred it, ended it (talk 200) without a wrap-up: ACW part 0
    ("a2", "15m", {"answered": 1, "ended": 1, "aht_s": 200.0, "avg_acw_s": None,
                   "transferred": 1, "csat": 0.0, "state": "on_call"}),
    # a3 only ever paused: figures empty, ratios null
    ("a3", "15m", {"answered": 0, "ended": 0, "aht_s": None, "csat": None, "state": "paused"}),
    # a5 answered c0 at 08:00:40 and never sent a state
    ("a5", "today", {"answered": 1, "start": "2024-03-01T00:00:00Z", "state": None,
                     "queues": []}),
    ("a5", "15m", {"answered": 0}),
    # [10:05, 10:10): only a1's survey
    ("a1", "5m", {"answered": 0, "ended": 0, "aht_s": None, "csat": 1.0}),
]  # fmt: skip


@pytest.mark.parametrize(("agent", "window", "expected"), AGENT_KPIS)
def test_agent_kpis(client: TestClient, agent: str, window: str, expected: dict[str, Any]) -> None:
    kpis = get_json(client, f"/v1/agents/{agent}/kpis", window=window, at=AT_1010)
    assert (kpis["agent_id"], kpis["window"], kpis["end"]) == (agent, window, AT_1010)
    assert {field: kpis[field] for field in expected} == expected


def test_agent_kpis_default_window_is_15m(client: TestClient) -> None:
    kpis = get_json(client, "/v1/agents/a1/kpis", at=AT_1010)
    assert (kpis["window"], kpis["start"]) == ("15m", "2024-03-01T09:55:00Z")


def test_default_centre_config_is_the_fixture_config() -> None:
    # the rows above rely on these settings
    assert CENTRE.for_queue("sales").threshold_s == SALES_THRESHOLD_S
    assert CENTRE.for_queue("sales").short_abandon_s == 5.0
    assert CENTRE.for_queue("support") == QueueConfig()
