"""Hot answers built between requests (api/refresh.py) and served from the cache (api/answers.py).

The real ASGI app in the test's own event loop (no thread: the refresher and the requests share
the loop, as in ``callpulse api``), the scenario of ``apifixtures`` fed as changelog records.
``AnswerCache.request_builds`` counts builds on the request path; the refresher's are the rest
of ``builds``. References are the plain reader's bytes with its clock pinned at the second.
The clock starts at 10:10:30.9, inside the refresher's lead before 10:10:31, so a running
refresher builds the next second's answers at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

import httpx
import orjson
import pytest

from api.answers import HOT_S
from api.main import create_app
from api.refresh import AnswerRefresher, in_slices
from api.routes.stream import _snapshot
from api.services import Services
from api.views import ModelReader, to_end
from stream.kpi.timeutil import US_PER_S
from stream.kpi.windows import live_end_us
from tests.unit.apifixtures import (
    CENTRE,
    ChangelogStore,
    hms,
    processed_scenario,
    services_fed,
)
from tests.unit.test_answer_cache import process_more, sales_offer

SECOND_US = hms("10:10:30")
Clock = Callable[[int], None]
CENTRE_15M = {"window": "15m"}


@pytest.fixture(autouse=True)
def clock_at(monkeypatch: pytest.MonkeyPatch) -> Clock:
    def freeze(now_us: int) -> None:
        monkeypatch.setattr("api.clock.now_us", lambda: now_us)

    freeze(SECOND_US + 900_000)
    return freeze


@pytest.fixture(autouse=True)
def every_build_costly(monkeypatch: pytest.MonkeyPatch) -> None:
    """This scenario's answers build in well under CHEAP_BUILD_S; the refresher's rules are
    for answers that cost more (see the cheap-question test, which puts the limit back)."""
    monkeypatch.setattr("api.answers.CHEAP_BUILD_S", 0.0)


@pytest.fixture
def store() -> ChangelogStore:
    return processed_scenario()


@pytest.fixture
def services(store: ChangelogStore) -> Services:
    return services_fed(store)


@pytest.fixture
def refresher(services: Services) -> AnswerRefresher:
    refresher = AnswerRefresher(services.model, services.answers, lambda: services.reader)
    services.answers.revalidating = True  # what ``run`` sets: tests drive the rounds
    return refresher


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def body(client: httpx.AsyncClient, query: dict[str, Any] = CENTRE_15M) -> bytes:
    response = await client.get("/v1/kpis", params=query)
    assert response.status_code == 200, response.text
    return response.content


def fresh(services: Services, second: int) -> bytes:
    """The live 15-minute centre answer built now, in one piece, as of ``second``."""
    reader = ModelReader(services.model, services.centre).at_second(second)
    return orjson.dumps(reader.centre_kpis("15m", live_end_us(second)))


def longest_wait_s(answer: bytes) -> float:
    total: dict[str, float] = orjson.loads(answer)["total"]
    return total["longest_wait_s"]


async def test_a_hot_question_at_a_new_second_is_served_without_a_build_on_the_request(
    client: httpx.AsyncClient, services: Services, clock_at: Clock
) -> None:
    answers = services.answers
    assert await body(client) == fresh(services, SECOND_US)  # cold: built on the request
    assert answers.request_builds == 1
    refresher = AnswerRefresher(services.model, answers, lambda: services.reader)
    task = asyncio.create_task(refresher.run())
    try:
        for _ in range(500):
            if refresher.prebuilt_us == SECOND_US + US_PER_S:
                break
            await asyncio.sleep(0.01)
        # Still 10:10:30: the next second's answer is stored, not served.
        assert await body(client) == fresh(services, SECOND_US)
        clock_at(SECOND_US + US_PER_S + 300_000)
        served = await body(client)
        assert served == fresh(services, SECOND_US + US_PER_S)
        assert longest_wait_s(served) == 451.0  # c4, offered at 10:03:00: as of 10:10:31
        assert (answers.request_builds, answers.builds) == (1, 2)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not answers.revalidating


@pytest.mark.usefixtures("refresher")
async def test_an_answer_is_never_of_an_earlier_second_than_the_request(
    client: httpx.AsyncClient, services: Services, clock_at: Clock
) -> None:
    at_30 = await body(client)
    # Served as stale versions may be (api/answers.py), an earlier second's answer is not:
    # with no refresher round at 10:10:31 the request builds.
    clock_at(SECOND_US + US_PER_S)
    at_31 = await body(client)
    assert at_31 == fresh(services, SECOND_US + US_PER_S) != at_30
    assert services.answers.request_builds == 2


async def test_after_a_version_change_the_refreshed_answer_equals_a_fresh_build(
    client: httpx.AsyncClient,
    services: Services,
    store: ChangelogStore,
    refresher: AnswerRefresher,
) -> None:
    before = await body(client)
    process_more(services, store, [sales_offer("c9", hms("10:10:10"))])
    # Until the refresher has built the new version, the newest answer of the second is served.
    assert await body(client) == before
    assert services.answers.request_builds == 1
    assert await refresher.build_round(SECOND_US) == 1
    after = await body(client)
    assert after == fresh(services, SECOND_US) != before
    assert orjson.loads(after)["total"]["offered"] == orjson.loads(before)["total"]["offered"] + 1
    assert services.answers.request_builds == 1
    # Nothing changed since: another round builds nothing.
    assert await refresher.build_round(SECOND_US) == 0


async def test_a_cheap_question_is_rebuilt_on_the_request_when_the_model_changed(
    client: httpx.AsyncClient,
    services: Services,
    store: ChangelogStore,
    refresher: AnswerRefresher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("api.answers.CHEAP_BUILD_S", 60.0)  # every build here is cheap
    before = await body(client)
    process_more(services, store, [sales_offer("c9", hms("10:10:10"))])
    # Not the stale answer: a poller sees a record as soon as it lands.
    after = await body(client)
    assert after == fresh(services, SECOND_US) != before
    assert services.answers.request_builds == 2


async def test_a_cold_question_builds_on_the_request(
    client: httpx.AsyncClient, services: Services, clock_at: Clock, refresher: AnswerRefresher
) -> None:
    await body(client)
    assert services.answers.request_builds == 1
    # Asked more than HOT_S seconds ago: no longer built ahead, so built when asked again.
    later_us = SECOND_US + (HOT_S + 1) * US_PER_S
    assert await refresher.build_round(later_us) == 0
    clock_at(later_us)
    assert await body(client) == fresh(services, later_us)
    # And a question never asked before, while the refresher runs.
    assert await body(client, {"window": "1h"}) == orjson.dumps(
        ModelReader(services.model, CENTRE)
        .at_second(later_us)
        .centre_kpis("1h", live_end_us(later_us))
    )
    assert services.answers.request_builds == 3


async def test_the_sliced_build_equals_the_one_piece_build(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = ModelReader(services.model, CENTRE).at_second(SECOND_US)
    end_us = live_end_us(SECOND_US)
    compare = ("previous", "last_week")
    one_piece = orjson.dumps(reader.centre_kpis("today", end_us, 10, compare))
    slices = 0
    pieces = reader.centre_kpis_slices("today", end_us, 10, compare)
    while True:
        try:
            next(pieces)
            slices += 1
        except StopIteration as done:
            sliced = orjson.dumps(done.value)
            break
    assert sliced == one_piece
    # Per window: a slice per queue, the total's sums, then its agents' occupancy (5 agents).
    assert slices == 3 * (len(reader.queue_names()) + 2)
    # Each queue's part is that queue's own answer.
    answer = orjson.loads(sliced)
    for item in answer["queues"]:
        alone = reader.queue_kpis(item["queue"], "today", end_us, 10, compare)
        assert orjson.loads(orjson.dumps(alone)) == item
    # The refresher's driver, letting the loop in after every slice, gives the same bytes.
    monkeypatch.setattr("api.refresh.SLICE_S", 0.0)

    sliced_encoding = _encoding(reader.centre_kpis_slices("today", end_us, 10, compare))
    assert (await in_slices(sliced_encoding))[0] == one_piece
    assert to_end(_encoding(reader.centre_kpis_slices("today", end_us, 10, compare))) == one_piece


def _encoding(
    slices: Generator[None, None, dict[str, Any]],
) -> Generator[None, None, bytes]:
    kpis = yield from slices
    return orjson.dumps(kpis)


async def test_the_stream_sends_a_refreshed_snapshot_after_a_stale_one(
    services: Services, store: ChangelogStore, refresher: AnswerRefresher, clock_at: Clock
) -> None:
    first = _snapshot(services, "15m", None, None)
    process_more(services, store, [sales_offer("c9", hms("10:10:10"))])
    stale = _snapshot(services, "15m", None, None)
    assert stale is first and stale.version < services.model.version  # not sent again
    await refresher.build_round(SECOND_US)
    refreshed = _snapshot(services, "15m", None, None)
    assert refreshed.version == services.model.version
    assert refreshed.body.startswith(b"event: kpis\ndata: ")
    assert refreshed.body[len(b"event: kpis\ndata: ") : -2] == fresh(services, SECOND_US)
    assert services.answers.request_builds == 1


async def test_a_request_waits_for_the_refreshers_build_of_its_second_rather_than_building(
    client: httpx.AsyncClient,
    services: Services,
    clock_at: Clock,
    refresher: AnswerRefresher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await body(client)
    monkeypatch.setattr("api.refresh.SLICE_S", 0.0)  # the round lets the loop in every slice
    next_us = SECOND_US + US_PER_S
    building = asyncio.create_task(refresher.build_round(next_us))
    await asyncio.sleep(0)  # the round has begun: its answer of 10:10:31 is on its way
    clock_at(next_us)
    assert await body(client) == fresh(services, next_us)
    assert building.done() and await building == 1
    assert (services.answers.request_builds, services.answers.builds) == (1, 2)
