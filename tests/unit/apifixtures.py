"""A broker-free API under test: contract events through the real validator and processor.

The worker writes records into a dict (a Faust table in production); the read model is fed
those records exactly as the API's changelog feed would feed it, after a JSON round trip (the
changelog is JSON). Nothing the API does is mocked; only the clock is passed in.

The hand-made scenario, queue ``sales`` (threshold 25 s, short abandon 5 s), on 2024-03-01 UTC::

    08:00:00  c0 offered ........ 08:00:40 answered by a5 (wait 40 s: in `today`, not in 15m)
    10:01:00  c1 offered ........ 10:01:10 answered by a1 (wait derived: 10 s)
    10:01:05  c2 offered ........ 10:01:30 answered by a2 (wait_s 25: exactly the threshold)
    10:01:58  c3 offered ..|..... 10:02:01 abandoned (3 s: short; its wait spans 10:02:00)
    10:03:00  c4 offered ........................................ still waiting
    10:04:00  c5 offered ........ 10:04:40 exited (timeout, wait_s 40: in no wait figure)
    10:02:30  c2 transferred by a2; 10:03:00 c1 ended (talk 110, hold 10); 10:03:30 c1 wrap-up
              (acw 30); 10:05:00 c2 ended (talk 200, no hold); 10:06 surveys; 10:06:30 resolutions

Agents (all in ``sales``): a4 logged_out 09:50; a3 paused 09:58; a1, a2 available 09:59;
a1 on_call 10:01:10, acw 10:03:00, available 10:03:30; a2 on_call 10:01:30.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta, timezone
from typing import Any

import orjson
from starlette.exceptions import StarletteDeprecationWarning

from api.main import create_app
from api.readmodel import ReadModel
from api.services import Services
from callpulse.settings import Settings
from stream.decode import Rejection
from stream.kpi.config import CentreConfig, QueueConfig
from stream.kpi.timeutil import US_PER_S, parse_ts_us, us_to_datetime, us_to_rfc3339
from stream.processor import MessageProcessor
from stream.validation import EventValidator

with warnings.catch_warnings():
    # Starlette >= 1.0 asks for httpx2 and warns (an error under our pytest settings) when it
    # falls back to httpx, which is what pyproject.toml installs. Remove once httpx2 is a test dep.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient as TestClient  # re-exported for the tests

Event = dict[str, Any]
Record = tuple[str, dict[str, Any] | None]

T0_US = parse_ts_us("2024-03-01T10:00:00Z")  # a bucket boundary; the scenario's origin
MIDNIGHT_US = parse_ts_us("2024-03-01T00:00:00Z")
PLUS_TWO = timezone(timedelta(hours=2))
SALES_THRESHOLD_S = 25
CENTRE = CentreConfig(
    queues={
        "sales": QueueConfig(threshold_s=SALES_THRESHOLD_S),
        "support": QueueConfig(),  # configured, never sees an event
    }
)

# The KPI object's fields, as CONTRACT.md lists them.
CONTRACT_KPI_FIELDS = frozenset(
    {
        "queue", "window", "start", "end",
        "offered", "answered", "abandoned", "short_abandoned", "exited",
        "answered_in_threshold", "service_level", "service_level_threshold_s",
        "answer_rate", "abandon_rate", "asa_s", "avg_wait_s", "max_wait_s", "aht_s",
        "avg_talk_s", "avg_hold_s", "avg_acw_s", "transferred", "transfer_rate",
        "calls_waiting", "longest_wait_s", "agents", "csat", "nps", "ces", "fcr_rate",
    }
)  # fmt: skip
# Every figure of the KPI object that is a ratio or an average: null on an empty window.
NULLABLE_FIELDS = (
    "service_level", "answer_rate", "abandon_rate", "asa_s", "avg_wait_s", "max_wait_s",
    "aht_s", "avg_talk_s", "avg_hold_s", "avg_acw_s", "transfer_rate", "longest_wait_s",
    "csat", "nps", "ces", "fcr_rate",
)  # fmt: skip
COUNT_FIELDS = (
    "offered", "answered", "abandoned", "short_abandoned", "exited",
    "answered_in_threshold", "transferred", "calls_waiting",
)  # fmt: skip


def s(seconds: float) -> int:
    return round(seconds * US_PER_S)


def hms(clock: str, day_us: int = MIDNIGHT_US) -> int:
    """``"10:01:30"`` on the scenario's day, as epoch µs."""
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    return day_us + s(hours * 3600 + minutes * 60 + seconds)


def iso(ts_us: int) -> str:
    return us_to_rfc3339(ts_us)


class _Ids:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"e{self.n:03d}"


def scenario_events(t0_us: int = T0_US) -> list[Event]:
    """The module docstring's scenario, ``t0_us`` standing for 10:00:00."""
    next_id = _Ids()

    def at(offset_s: float) -> str:
        return iso(t0_us + s(offset_s))

    def call(kind: str, call_id: str, offset_s: float, **fields: Any) -> Event:
        return {"event_id": next_id(), "type": kind, "ts": at(offset_s), "queue": "sales",
                "call_id": call_id, **fields}  # fmt: skip

    def agent(agent_id: str, offset_s: float, state: str) -> Event:
        return {"event_id": next_id(), "type": "agent.state", "ts": at(offset_s),
                "agent_id": agent_id, "state": state, "queues": ["sales"]}  # fmt: skip

    def survey(survey_name: str, call_id: str, agent_id: str, score: float) -> Event:
        return {"event_id": next_id(), "type": "survey.response", "ts": at(360),
                "queue": "sales", "survey": survey_name, "call_id": call_id,
                "agent_id": agent_id, "score": score}  # fmt: skip

    events = [
        agent("a4", -600, "logged_out"),
        agent("a3", -120, "paused"),
        agent("a1", -60, "available"),
        agent("a2", -60, "available"),
        call("call.offered", "c0", -7200),
        call("call.answered", "c0", -7160, agent_id="a5"),
        call("call.offered", "c1", 60, channel="voice"),
        call("call.offered", "c2", 65),
        call("call.answered", "c1", 70, agent_id="a1"),
        agent("a1", 70, "on_call"),
        call("call.answered", "c2", 90, agent_id="a2", wait_s=25),
        agent("a2", 90, "on_call"),
        call("call.offered", "c3", 118),
        call("call.abandoned", "c3", 121),
        call("call.transferred", "c2", 150, agent_id="a2", to_queue="billing"),
        call("call.offered", "c4", 180),
        call("call.ended", "c1", 180, agent_id="a1", talk_s=110, hold_s=10),
        agent("a1", 180, "acw"),
        call("call.wrapup_ended", "c1", 210, agent_id="a1", acw_s=30),
        agent("a1", 210, "available"),
        call("call.offered", "c5", 240),
        call("call.exited", "c5", 280, reason="timeout", wait_s=40),
        call("call.ended", "c2", 300, agent_id="a2", talk_s=200),
        survey("csat", "c1", "a1", 5),
        survey("csat", "c2", "a2", 3),
        survey("nps", "c1", "a1", 10),
        survey("nps", "c2", "a2", 5),
        survey("ces", "c1", "a1", 2),
        survey("ces", "c2", "a2", 4),
        call("call.resolved", "c1", 390, resolved=True, first_contact=True),
        call("call.resolved", "c2", 390, resolved=True, first_contact=False),
    ]
    # Timestamps in the other forms the contract allows, for the same instants.
    events[6]["ts"] = (t0_us + s(60)) / US_PER_S  # epoch seconds
    events[7]["ts"] = us_to_datetime(t0_us + s(65)).astimezone(PLUS_TWO).isoformat()
    return events


class ChangelogStore(dict[str, Any]):
    """The worker's record store, remembering every write and delete as changelog records."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[Record] = []

    def __setitem__(self, key: str, value: dict[str, Any]) -> None:
        super().__setitem__(key, value)
        self.log.append((key, _as_changelog(value)))

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.log.append((key, None))


def _as_changelog(value: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = orjson.loads(orjson.dumps(value))
    return decoded


def validated(events: Iterable[Event], now_us: int) -> list[Event]:
    validator = EventValidator()
    accepted: list[Event] = []
    for event in events:
        result = validator.validate(event, now_us=now_us)
        assert not isinstance(result, Rejection), f"scenario event refused: {result}"
        accepted.append(result)
    return accepted


def run_worker(
    events: Sequence[Event], *, now_us: int, centre: CentreConfig = CENTRE, per_message: int = 4
) -> ChangelogStore:
    """Validate and process ``events`` in messages of ``per_message`` events, in order."""
    store = ChangelogStore()
    processor = MessageProcessor(centre)
    accepted = validated(events, now_us)
    for offset, first in enumerate(range(0, len(accepted), per_message)):
        batch = accepted[first : first + per_message]
        processor.process(store, batch, offset=offset, partition=0, now_us=now_us)
    return store


def feed(model: ReadModel, changelog: Iterable[Record]) -> None:
    for key, value in changelog:
        model.apply(key, value)


def compacted(store: ChangelogStore) -> Iterator[Record]:
    """What a compacted changelog holds: the latest value of every record."""
    for key, value in store.items():
        yield key, _as_changelog(value)


def build_services(
    events: Sequence[Event],
    *,
    now_us: int,
    centre: CentreConfig = CENTRE,
    settings: Settings | None = None,
) -> Services:
    services = Services(settings=settings or Settings(), centre=centre)
    feed(services.model, compacted(run_worker(events, now_us=now_us, centre=centre)))
    return services


def processed_scenario() -> ChangelogStore:
    """The scenario's changelog, processed an hour after 10:00."""
    return run_worker(scenario_events(), now_us=T0_US + s(3600))


def services_fed(store: ChangelogStore) -> Services:
    """Services whose read model replayed ``store`` as a compacted changelog."""
    services = Services(settings=Settings(), centre=CENTRE)
    feed(services.model, compacted(store))
    return services


def client_for(services: Services, *, raise_server_exceptions: bool = True) -> TestClient:
    return TestClient(create_app(services), raise_server_exceptions=raise_server_exceptions)


def scenario_client(**kwargs: Any) -> TestClient:
    """The scenario, processed an hour after 10:00, served by a fresh app."""
    services = build_services(scenario_events(), now_us=T0_US + s(3600), **kwargs)
    return client_for(services)
