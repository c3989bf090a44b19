"""The wallboard in a real browser (Debian's Chromium through its chromedriver) against a real
worker and API on the embedded broker, with tokens configured as in production.

The page must show what the API serves (and the API what an independent reference computes
from the raw events), colour tiles by the table in docs/WALLBOARD.md, turn a tile red when
new events push a queue under its target, and come back by itself after the API restarts.
Screenshots go to artifacts/ (gitignored) for a person to judge readability.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from callpulse.tokens import entry_for, new_token
from stream.kpi.timeutil import US_PER_S, parse_ts_us
from tests.integration.callevents import Event, agent_state, call, now_us
from tests.integration.stack import Stack, start_stack
from tests.reference import reference_kpis

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1920,1080",  # a TV
)
THRESHOLD_S = 20  # the default service-level threshold; the stack has no queues file
READ_ROWS = """
return Array.from(document.querySelectorAll('.row')).map((row) => ({
  queue: row.dataset.queue,
  name: row.querySelector('.name').textContent,
  noData: row.classList.contains('no-data'),
  tiles: Object.fromEntries(Array.from(row.querySelectorAll('.tile')).map((tile) => [
    tile.dataset.kpi,
    {value: tile.dataset.value, level: tile.dataset.level,
     text: tile.querySelector('.value').textContent},
  ])),
}));
"""


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token() -> str:
    return new_token()


@pytest.fixture(scope="module")
def board_stack(
    broker: str, tmp_path_factory: pytest.TempPathFactory, token: str
) -> Iterator[Stack]:
    """A worker and an API that, like production, let nobody in without a token."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CALLPULSE_TOKENS", entry_for(token, ["read", "ingest"]).line)
        stack = start_stack(broker, tmp_path_factory.mktemp("wallboard"), name="wallboard")
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    for binary in (CHROMIUM, CHROMEDRIVER):
        assert shutil.which(binary), f"{binary} missing: run scripts/install-system-deps"
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    # An explicit driver path: Selenium Manager never runs, so nothing is downloaded.
    driver = webdriver.Chrome(
        options=options, service=Service(executable_path=CHROMEDRIVER, log_output=str(log))
    )
    try:
        yield driver
    finally:
        driver.quit()


class Api:
    def __init__(self, stack: Stack, token: str) -> None:
        self.stack = stack
        self.headers = {"Authorization": f"Bearer {token}"}
        self.sent: list[Event] = []

    def post(self, events: list[Event]) -> None:
        reply = httpx.post(
            f"{self.stack.url}/v1/events", json=events, headers=self.headers, timeout=30
        )
        assert reply.status_code == 202, reply.text
        self.sent.extend(events)
        self.stack.wait_processed(len(self.sent))

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.stack.url + path, params=params, headers=self.headers, timeout=10)

    def kpis(self) -> dict[str, Any]:
        reply = self.get("/v1/kpis", window="15m")
        reply.raise_for_status()
        return dict(reply.json())


@pytest.fixture(scope="module")
def api(board_stack: Stack, token: str) -> Api:
    return Api(board_stack, token)


def open_board(browser: WebDriver, stack: Stack, token: str, queues: str) -> None:
    browser.get(f"{stack.url}/wallboard?queues={queues}&window=15m&access_token={token}")


def rows(browser: WebDriver) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = browser.execute_script(READ_ROWS)
    return found


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def row_of(browser: WebDriver, queue: str) -> dict[str, Any] | None:
    return next((row for row in rows(browser) if row["queue"] == queue), None)


def screenshot(browser: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / name))


# --- the colour table, run by the page's own script --------------------------------------------

K = dict[str, Any]


def kpis(**fields: Any) -> K:
    return {"service_level_threshold_s": THRESHOLD_S, "service_level_target": 0.8, **fields}


LEVELS: list[tuple[str, K, Any, str]] = [
    ("service_level", kpis(service_level=0.8), None, "green"),  # exactly on target
    ("service_level", kpis(service_level=0.7), None, "amber"),  # exactly 10 points under
    ("service_level", kpis(service_level=0.6999), None, "red"),  # just past the amber band
    ("service_level", kpis(service_level=None), None, "none"),  # empty window: no colour
    ("abandon_rate", kpis(abandon_rate=0.0499), None, "green"),  # just under 5 %
    ("abandon_rate", kpis(abandon_rate=0.05), None, "amber"),  # 5 % is amber
    ("abandon_rate", kpis(abandon_rate=0.1), None, "red"),  # 10 % is red
    ("abandon_rate", kpis(abandon_rate=None), None, "none"),  # nothing answered or abandoned
    ("longest_wait_s", kpis(), None, "green"),  # nobody waiting
    ("longest_wait_s", kpis(), 20, "green"),  # exactly T still meets the threshold
    ("longest_wait_s", kpis(), 20.5, "amber"),  # past T
    ("longest_wait_s", kpis(), 40, "amber"),  # exactly 2T
    ("longest_wait_s", kpis(), 40.1, "red"),  # past 2T
    ("asa_s", kpis(asa_s=10), None, "green"),  # exactly T/2
    ("asa_s", kpis(asa_s=10.01), None, "amber"),  # past T/2
    ("asa_s", kpis(asa_s=21), None, "red"),  # past T
    ("asa_s", kpis(asa_s=None), None, "none"),  # nothing answered
    ("calls_waiting", kpis(calls_waiting=0, agents={}), None, "green"),  # empty queue
    (
        "calls_waiting",
        kpis(calls_waiting=2, agents={"available": 2, "logged_in": 3}),
        None,
        "green",
    ),  # every waiting call has a free agent
    (
        "calls_waiting",
        kpis(calls_waiting=3, agents={"available": 1, "logged_in": 4}),
        None,
        "amber",
    ),  # more calls than free agents
    (
        "calls_waiting",
        kpis(calls_waiting=1, agents={"available": 0, "logged_in": 3}),
        None,
        "red",
    ),  # calls wait and nobody is free
    (
        "calls_waiting",
        kpis(calls_waiting=1, agents={"available": 0, "logged_in": 0}),
        None,
        "amber",
    ),  # no agent data at all: not red all day
    ("agents_available", kpis(calls_waiting=5, agents={"available": 1}), None, "green"),
    (
        "agents_available",
        kpis(calls_waiting=2, agents={"available": 0, "logged_in": 2}),
        None,
        "red",
    ),  # calls wait, nobody free
    (
        "agents_available",
        kpis(calls_waiting=0, agents={"available": 0, "logged_in": 2}),
        None,
        "amber",
    ),  # all busy, nobody waiting yet
    (
        "agents_available",
        kpis(calls_waiting=0, agents={"available": 0, "logged_in": 0}),
        None,
        "none",
    ),  # nobody logged in, nobody calling (night)
]

FORMATS: list[tuple[str, Any, str]] = [
    ("duration", 59.99, "59s"),  # seconds are floored, never rounded up to a minute
    ("duration", 65.9, "1:05"),  # minutes and zero-padded seconds
    ("duration", None, "\u2014"),  # null: a dash, never 0
    ("percent", 0.8, "80%"),  # whole percent for service level
    ("percent1", 0.0449, "4.5%"),  # one decimal for abandonment
    ("count", 0, "0"),  # zero is a figure, not a dash
]


def test_colour_and_format_tables(
    browser: WebDriver, board_stack: Stack, token: str, api: Api
) -> None:
    open_board(browser, board_stack, token, "")
    wait_for(lambda: browser.execute_script("return window.callpulseWallboard"), "the script")
    for kpi, figures, value, expected in LEVELS:
        got = browser.execute_script(
            "return window.callpulseWallboard.levels[arguments[0]](arguments[1], arguments[2])",
            kpi,
            figures,
            value,
        )
        assert got == expected, f"{kpi} {figures} {value}: {got}, table says {expected}"
    for name, value, expected in FORMATS:
        got = browser.execute_script(
            "return window.callpulseWallboard.format[arguments[0]](arguments[1])", name, value
        )
        assert got == expected, f"format.{name}({value}): {got!r}"


# --- tiles against the API and the reference ----------------------------------------------------


def scenario(now: int) -> list[Event]:
    """sales: eight calls answered within 20 s. support: answered at 10 s and 30 s, a short
    (3 s) and a long (40 s) abandon, and one call still waiting since 30 s ago."""
    t0 = now - 6 * 60 * US_PER_S
    events: list[Event] = [
        agent_state("a1", "available", ["sales"], t0),
        agent_state("a2", "available", ["sales"], t0),
        agent_state("a3", "on_call", ["sales"], t0),
        agent_state("a4", "available", ["support"], t0),
        agent_state("a5", "paused", ["support"], t0),
    ]
    for n, wait_s in enumerate((5, 8, 10, 12, 15, 18, 19, 20)):
        events += call("sales", f"s{n}", t0 + n * 20 * US_PER_S, wait_s=wait_s, outcome="answered")
    for n, (wait_s, outcome) in enumerate(
        [(10, "answered"), (30, "answered"), (3, "abandoned"), (40, "abandoned")]
    ):
        events += call("support", f"p{n}", t0 + n * 30 * US_PER_S, wait_s=wait_s, outcome=outcome)
    events += call("support", "p-waiting", now - 30 * US_PER_S, wait_s=0, outcome="waiting")
    return events


# Colours for the scenario, worked out by hand from docs/WALLBOARD.md.
EXPECTED_LEVELS = {
    "sales": {"service_level": "green", "abandon_rate": "green", "asa_s": "amber",
              "calls_waiting": "green", "agents_available": "green"},
    # SL 1/3, abandonment 50 %, ASA 20 s = T, 1 waiting with 1 free agent.
    "support": {"service_level": "red", "abandon_rate": "red", "asa_s": "amber",
                "calls_waiting": "green", "agents_available": "green"},
}  # fmt: skip
FIELDS = {
    "calls_waiting": "calls_waiting",
    "service_level": "service_level",
    "abandon_rate": "abandon_rate",
    "asa_s": "asa_s",
}


def assert_tile_matches(tile: dict[str, Any], served: Any, where: str) -> None:
    if served is None:
        assert tile["value"] == "" and tile["text"] == "\u2014", f"{where}: {tile}"
    else:
        assert math.isclose(float(tile["value"]), served, abs_tol=1e-9), f"{where}: {tile}"


def test_tiles_match_the_api_and_the_reference(
    browser: WebDriver, board_stack: Stack, token: str, api: Api
) -> None:
    now = now_us()
    api.post(scenario(now))
    open_board(browser, board_stack, token, "support,sales,ghost")
    wait_for(
        lambda: (row := row_of(browser, "support")) and row["tiles"]["calls_waiting"]["value"],
        "support's figures on the board",
    )
    served = api.kpis()
    by_queue = {item["queue"]: item for item in served["queues"]}
    board = rows(browser)
    # The URL's order; the unknown queue keeps an empty row; the total comes last.
    assert [row["queue"] for row in board] == ["support", "sales", "ghost", ""]
    assert board[2]["noData"] and board[3]["name"] == "Centre total"
    start_us, end_us = parse_ts_us(served["start"]), parse_ts_us(served["end"])
    for row in board[:2]:
        queue, tiles = row["queue"], row["tiles"]
        reference = reference_kpis(api.sent, queue=queue, start_us=start_us, end_us=end_us)
        for kpi, field in FIELDS.items():
            assert_tile_matches(tiles[kpi], by_queue[queue][field], f"{queue} {kpi}")
            assert by_queue[queue][field] == pytest.approx(reference[field]), f"{queue} {field}"
        available = by_queue[queue]["agents"]["available"]
        assert tiles["agents_available"]["value"] == str(available)
        assert available == reference["agents"]["available"]
        for kpi, level in EXPECTED_LEVELS[queue].items():
            assert tiles[kpi]["level"] == level, f"{queue} {kpi}: {tiles[kpi]}"
    support = board[0]["tiles"]
    assert support["service_level"]["text"] == "33%" and support["abandon_rate"]["text"] == "50.0%"
    assert support["asa_s"]["text"] == "20s"
    # The longest wait is the age of the oldest waiting call now, ticking on the page.
    age_s = (now_us() - (now - 30 * US_PER_S)) / US_PER_S
    longest = support["longest_wait_s"]
    assert abs(float(longest["value"]) - age_s) < 2.5, longest
    colour = "green" if age_s <= THRESHOLD_S else "amber" if age_s <= 2 * THRESHOLD_S else "red"
    assert longest["level"] == colour, longest
    total = board[3]["tiles"]
    assert_tile_matches(total["service_level"], served["total"]["service_level"], "total SL")
    assert total["calls_waiting"]["value"] == str(served["total"]["calls_waiting"])
    screenshot(browser, "wallboard.png")


def test_a_tile_turns_red_when_service_level_falls_under_target(
    browser: WebDriver, board_stack: Stack, token: str, api: Api
) -> None:
    now = now_us()
    t0 = now - 4 * 60 * US_PER_S
    good = [
        call("billing", f"b{n}", t0 + n * US_PER_S, wait_s=5, outcome="answered") for n in range(4)
    ]
    api.post([event for pair in good for event in pair])
    open_board(browser, board_stack, token, "billing")

    def level() -> str | None:
        row = row_of(browser, "billing")
        return None if row is None else str(row["tiles"]["service_level"]["level"])

    wait_for(lambda: level() == "green", "billing green at 100 %")
    # Six calls answered after 45 s: 4 of 10 within 20 s, 40 %, far under the 80 % target.
    slow = [
        call("billing", f"b-slow{n}", t0 + (10 + n) * US_PER_S, wait_s=45, outcome="answered")
        for n in range(6)
    ]
    api.post([event for pair in slow for event in pair])
    wait_for(lambda: level() == "red", "billing red without a reload", timeout_s=15)
    row = row_of(browser, "billing")
    assert row is not None
    served = api.get("/v1/queues/billing/kpis", window="15m").json()
    assert served["service_level"] == pytest.approx(0.4)
    assert_tile_matches(row["tiles"]["service_level"], served["service_level"], "billing SL")
    assert row["tiles"]["service_level"]["text"] == "40%"
    screenshot(browser, "wallboard-red.png")


READ_ALERTS = """
return Array.from(document.querySelectorAll('#alert-list .alert')).map((item) => [
  item.querySelector('.alert-queue').textContent, item.querySelector('.alert-name').textContent,
]);
"""


def firing(api: Api) -> list[list[str]]:
    reply = api.get("/v1/alerts")
    assert reply.status_code == 200, reply.text
    return [[a["queue"], a["rule"]] for a in reply.json()["active"] if a["status"] == "firing"]


def test_alert_list_follows_firing_and_resolving_alerts(
    browser: WebDriver, board_stack: Stack, token: str, api: Api
) -> None:
    open_board(browser, board_stack, token, "")
    wait_for(lambda: browser.execute_script("return document.body.dataset.snapshots"), "data")
    # The default `longest_wait_high` rule: a call waiting over 120 s fires at once.
    offered = now_us() - 150 * US_PER_S
    api.post(call("escalations", "e-stuck", offered, wait_s=0, outcome="waiting"))
    expected = ["escalations", "longest_wait_high"]
    wait_for(lambda: expected in firing(api), "the API's alert firing")
    wait_for(
        lambda: expected in browser.execute_script(READ_ALERTS), "the alert on the board, pushed"
    )
    assert sorted(browser.execute_script(READ_ALERTS)) == sorted(firing(api))
    row = row_of(browser, "escalations")
    assert row is not None and row["tiles"]["longest_wait_s"]["level"] == "red"
    screenshot(browser, "wallboard-alert.png")
    # Answered: the alert resolves and leaves the board without a reload.
    api.post(
        [
            {
                **call("escalations", "e-stuck", offered, wait_s=155, outcome="answered")[1],
                "agent_id": "a9",
            }
        ]
    )
    wait_for(lambda: expected not in firing(api), "the API's alert resolving")
    wait_for(
        lambda: expected not in browser.execute_script(READ_ALERTS), "the alert leaving the board"
    )


def test_board_reconnects_by_itself_after_an_api_restart(
    browser: WebDriver, board_stack: Stack, token: str, api: Api
) -> None:
    open_board(browser, board_stack, token, "")

    def connection() -> str:
        return str(
            browser.execute_script("return document.getElementById('connection').dataset.state")
        )

    wait_for(lambda: connection() == "live", "a live connection")
    board_stack.processes["api"].terminate()
    board_stack.processes["api"].wait(timeout=15)
    wait_for(lambda: connection() != "live", "the page noticing the API is gone")
    before = int(browser.execute_script("return document.body.dataset.snapshots"))
    board_stack.start_process("api", "api", "--port", str(board_stack.port))
    wait_for(lambda: connection() == "live", "the page back live", timeout_s=60)
    wait_for(
        lambda: int(browser.execute_script("return document.body.dataset.snapshots")) > before,
        "a snapshot from the new API process",
    )
    assert browser.execute_script(
        "return !document.getElementById('board').classList.contains('stale')"
    )
