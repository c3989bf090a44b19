"""The KPI answer cache (api/answers.py) over the hand-made scenario of ``apifixtures``.

A cached answer must be the bytes a reader would compute for the same model and clock second.
The reference here is the plain ``ModelReader`` (no cache, reading the frozen API clock) encoded
with orjson; every request is made twice, so the second answer is the stored one, and
``AnswerCache.builds`` shows what was computed rather than served. The clock is frozen at
10:10:30 on the scenario's day, when c4 (offered 10:03:00) is still waiting::

    10:03:00 c4 offered ..... 10:10:30 (waited 450 s) .. 10:10:31 (451 s) .. 10:11:00 (minute turns)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from api.answers import DEFAULT_LIMIT
from api.routes.stream import STREAM_ANSWERS, _snapshot, _sse
from api.services import Services
from api.views import ModelReader
from stream.kpi.timeutil import US_PER_S
from stream.kpi.windows import live_end_us
from stream.processor import MessageProcessor
from tests.unit.apifixtures import (
    CENTRE,
    T0_US,
    ChangelogStore,
    TestClient,
    client_for,
    feed,
    hms,
    iso,
    processed_scenario,
    s,
    services_fed,
    validated,
)

NOW_US = hms("10:10:30")
PROCESSED_US = T0_US + s(3600)
Clock = Callable[[int], None]
Reference = Callable[[ModelReader], Any]

# (path, query, reference): one request, and what the plain reader answers to it.
QUESTIONS: list[tuple[str, dict[str, Any], Reference]] = [
    # the live window: ends at the end of the current minute, longest wait as of now
    ("/v1/kpis", {"window": "15m"},
     lambda r: r.centre_kpis("15m", live_end_us(NOW_US))),
    # a past window: same route, another `at`
    ("/v1/kpis", {"window": "5m", "at": iso(hms("10:05:00"))},
     lambda r: r.centre_kpis("5m", hms("10:05:00"))),
    # another threshold: same window, other figures
    ("/v1/kpis", {"window": "15m", "threshold_s": 10},
     lambda r: r.centre_kpis("15m", live_end_us(NOW_US), 10)),
    # comparisons, in the order asked (the answer keeps that order)
    ("/v1/kpis", {"window": "today", "compare": "last_week,previous"},
     lambda r: r.centre_kpis("today", live_end_us(NOW_US), None, ("last_week", "previous"))),
    ("/v1/kpis", {"window": "today", "compare": "previous,last_week"},
     lambda r: r.centre_kpis("today", live_end_us(NOW_US), None, ("previous", "last_week"))),
    # one queue: the queue is part of the question
    ("/v1/queues/sales/kpis", {"window": "30m"},
     lambda r: r.queue_kpis("sales", "30m", live_end_us(NOW_US))),
    ("/v1/queues/support/kpis", {"window": "30m"},
     lambda r: r.queue_kpis("support", "30m", live_end_us(NOW_US))),
    ("/v1/queues/sales/kpis", {"window": "1h", "compare": "previous"},
     lambda r: r.queue_kpis("sales", "1h", live_end_us(NOW_US), None, ("previous",))),
    # intervals: the default start (local midnight) and end (live)
    ("/v1/queues/sales/intervals", {"size": "30m"},
     lambda r: r.intervals("sales", "30m", hms("00:00:00"), live_end_us(NOW_US))),
    ("/v1/queues/sales/intervals",
     {"size": "15m", "start": iso(hms("09:45:00")), "end": iso(hms("10:15:00"))},
     lambda r: r.intervals("sales", "15m", hms("09:45:00"), hms("10:15:00"))),
]  # fmt: skip


@pytest.fixture
def clock_at(monkeypatch: pytest.MonkeyPatch) -> Clock:
    def freeze(now_us: int) -> None:
        monkeypatch.setattr("api.clock.now_us", lambda: now_us)

    freeze(NOW_US)
    return freeze


@pytest.fixture
def store() -> ChangelogStore:
    return processed_scenario()


@pytest.fixture
def services(store: ChangelogStore) -> Services:
    return services_fed(store)


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with client_for(services) as client:
        yield client


def body(client: TestClient, path: str, query: dict[str, Any]) -> bytes:
    response = client.get(path, params=query)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    content: bytes = response.content
    return content


def uncached(services: Services, reference: Reference) -> bytes:
    """What the reader computes for the model as it is, on the frozen clock."""
    return orjson.dumps(reference(ModelReader(services.model, services.centre)))


def live_sales(services: Services, now_us: int) -> bytes:
    """Queue ``sales``, live 15 minutes, from the plain reader with the clock at ``now_us``."""
    return uncached(services, lambda r: r.queue_kpis("sales", "15m", live_end_us(now_us)))


def process_more(services: Services, store: ChangelogStore, events: list[dict[str, Any]]) -> None:
    """The worker goes on with ``events``; its new changelog records reach the read model."""
    written = len(store.log)
    MessageProcessor(CENTRE).process(
        store, validated(events, PROCESSED_US), offset=1000, partition=0, now_us=PROCESSED_US
    )
    feed(services.model, store.log[written:])


def sales_offer(call_id: str, ts_us: int) -> dict[str, Any]:
    return {"event_id": f"x-{call_id}", "type": "call.offered", "ts": iso(ts_us),
            "queue": "sales", "call_id": call_id}  # fmt: skip


@pytest.mark.usefixtures("clock_at")
def test_every_answer_is_the_readers_own_bytes_first_and_second_time(
    client: TestClient, services: Services
) -> None:
    for round_ in (1, 2):
        for path, query, reference in QUESTIONS:
            assert body(client, path, query) == uncached(services, reference), (round_, query)
    # The second round was served from the cache, so the comparison above covered stored bodies.
    assert services.answers.builds == len(QUESTIONS)


@pytest.mark.usefixtures("clock_at")
def test_a_new_changelog_record_is_in_the_very_next_answer(
    client: TestClient, services: Services, store: ChangelogStore
) -> None:
    question = {"window": "15m"}
    before = body(client, "/v1/queues/sales/kpis", question)
    assert orjson.loads(before)["offered"] == 5
    process_more(services, store, [sales_offer("c9", hms("10:10:10"))])
    after = body(client, "/v1/queues/sales/kpis", question)
    assert (orjson.loads(after)["offered"], orjson.loads(after)["calls_waiting"]) == (6, 2)
    assert after == live_sales(services, NOW_US)
    centre = body(client, "/v1/kpis", question)
    assert orjson.loads(centre)["total"]["offered"] == 6


def test_a_live_window_moves_with_the_clock_second(
    client: TestClient, services: Services, clock_at: Clock
) -> None:
    question = {"window": "15m"}
    # Live figures are as of the whole second, whenever in it the first client asks ...
    clock_at(NOW_US + 400_000)
    at_1030 = body(client, "/v1/queues/sales/kpis", question)
    assert orjson.loads(at_1030)["longest_wait_s"] == 450.0  # c4, offered at 10:03:00
    clock_at(NOW_US)
    assert at_1030 == live_sales(services, NOW_US)
    # ... and that answer stands for the rest of the second.
    clock_at(NOW_US + 900_000)
    assert body(client, "/v1/queues/sales/kpis", question) == at_1030
    assert services.answers.builds == 1
    for now_us, longest_wait_s, end in (
        (NOW_US + US_PER_S, 451.0, "2024-03-01T10:11:00Z"),  # the second turns
        (hms("10:11:00"), 480.0, "2024-03-01T10:12:00Z"),  # and the minute: the window moves
    ):
        clock_at(now_us)
        served = body(client, "/v1/queues/sales/kpis", question)
        kpis = orjson.loads(served)
        assert (kpis["longest_wait_s"], kpis["end"]) == (longest_wait_s, end)
        assert served == live_sales(services, now_us)


@pytest.mark.usefixtures("clock_at")
def test_the_cache_keeps_a_few_answers_per_route_of_the_current_version_only(
    client: TestClient, services: Services, store: ChangelogStore
) -> None:
    minutes = [hms(f"10:{minute:02d}:00") for minute in range(3 * DEFAULT_LIMIT)]
    for at_us in minutes:
        body(client, "/v1/kpis", {"window": "5m", "at": iso(at_us)})
    assert len(services.answers) == DEFAULT_LIMIT
    # The most recently asked are the ones kept: asking the last again builds nothing.
    body(client, "/v1/kpis", {"window": "5m", "at": iso(minutes[-1])})
    assert services.answers.builds == len(minutes)
    # A new version: a stored answer is of the old one, so asking again builds anew.
    process_more(services, store, [sales_offer("c9", hms("10:10:10"))])
    body(client, "/v1/kpis", {"window": "5m", "at": iso(minutes[-1])})
    assert services.answers.builds == len(minutes) + 1


@pytest.mark.usefixtures("clock_at")
def test_the_stream_sends_one_snapshot_per_version_for_every_subscriber(
    services: Services, store: ChangelogStore
) -> None:
    def expected() -> bytes:
        answer = ModelReader(services.model, services.centre).centre_kpis(
            "15m", live_end_us(NOW_US)
        )
        answer["queues"] = [q for q in answer["queues"] if q["queue"] == "sales"]
        return _sse("kpis", answer)

    first = _snapshot(services, "15m", {"sales"}, None)
    assert first.body == expected()
    assert _snapshot(services, "15m", {"sales"}, None) is first  # the stored event itself
    assert _snapshot(services, "15m", None, None).body != first.body  # another question
    process_more(services, store, [sales_offer("c9", hms("10:10:10"))])
    assert _snapshot(services, "15m", {"sales"}, None).body == expected() != first.body
    assert services.answers.builds == 3
    assert STREAM_ANSWERS > DEFAULT_LIMIT  # wallboards differ more than API questions
