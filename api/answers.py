"""KPI answers encoded once, then served as the same bytes to every client asking the same thing.

An answer is a function of the question (route and normalised query parameters), the read model
and the API clock. The model counts every changelog record it applies (``ReadModel.version``),
and an answer is built by a reader whose clock is pinned to the whole second
(``ModelReader.at_second``), so the pair (version, second) names everything an answer depends on
besides the question. 200 clients polling the same wallboard question cost one build (about
100 ms for 200 queues) and 199 dictionary look-ups.

A request in second s is only ever served an answer built with the clock at s. Which version:

- Without a refresher (tests, tools), the answer of the model's current version: a request that
  finds none builds it, on the request path.
- With the refresher running (api/refresh.py, what ``callpulse api`` does), hot questions (asked
  in the last ``HOT_S`` seconds) are built between requests, in slices: the next second's
  answers shortly before the second turns, and the current second's again when the model has
  changed. Meanwhile a request is served the newest complete answer of its second, which may be
  of an earlier version (stale-while-revalidate, bounded to the second); never one older than
  an answer already served for that question, so figures never step back. A question with no
  answer at its second (cold, or the refresher late) is built on the request path, and so is
  a cheap one (under ``CHEAP_BUILD_S``, e.g. one queue's KPIs) whose answer is of an earlier
  version: stale answers are only worth serving when a build would hold up other requests.

What is stored is an ``Answer``: the JSON bytes, and on first demand their strong validator
(ETag) and their gzip form, so a client that sends ``If-None-Match`` or ``Accept-Encoding: gzip``
costs a comparison or the write of ~25 KB instead of 287 KB, never a compression of its own
(api/representation.py chooses what each request gets).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Hashable
from dataclasses import dataclass, field
from typing import Any

import orjson

from api.views import ModelReader, to_end
from stream.kpi.timeutil import US_PER_S

DEFAULT_LIMIT = 8  # distinct questions kept per route: wallboards ask the same few
HOT_S = 5  # a question asked within this many seconds is kept built by the refresher
# A question whose build takes less than this is rebuilt on the request path when the model
# changed, never served stale: one queue's KPIs cost well under a millisecond, and a poller
# sees a changelog record as soon as it lands (the latency target); /v1/kpis of 200 queues,
# ~80 ms, is left to the refresher.
CHEAP_BUILD_S = 0.005
# zlib level 5: 287 KB of /v1/kpis (200 queues) to 26 KB in ~2 ms, once per answer; level 1
# gives 35 KB in ~1 ms, level 9 23 KB in ~11 ms, all on the event loop.
GZIP_LEVEL = 5

# How a question's answer is made: a reader pinned at the second, the second (live windows end
# with its minute) -> the encoded bytes, yielding between slices (api/views.py).
Build = Callable[[ModelReader, int], Generator[None, None, bytes]]


def second_us(now_us: int) -> int:
    """``now_us`` down to its whole second: the instant a cached answer's live figures are at."""
    return now_us - now_us % US_PER_S


class Answer:
    """One encoded answer, of read-model ``version`` (at least) as of clock ``second``; its
    validator and gzip form are made once, when first asked for."""

    __slots__ = ("_etag", "_gzipped", "body", "second", "version")

    def __init__(self, body: bytes, version: int = 0, second: int = 0) -> None:
        self.body = body
        self.version = version
        self.second = second
        self._etag: str | None = None
        self._gzipped: bytes | None = None

    @property
    def etag(self) -> str:
        """A strong entity tag of the JSON bytes: the same figures give the same tag, also in
        a later second, so a poller whose figures did not change gets ``304``."""
        if self._etag is None:
            self._etag = '"' + hashlib.blake2b(self.body, digest_size=12).hexdigest() + '"'
        return self._etag

    @property
    def gzipped(self) -> bytes:
        """The body gzip-compressed (``mtime=0``: the same bytes for the same body)."""
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=GZIP_LEVEL, mtime=0)
        return self._gzipped


@dataclass(slots=True)
class Question:
    """One question asked of a route: how to build it, when it was last asked, its answers
    (the current second's and, once the refresher built it, the next one's)."""

    build: Build
    asked_us: int
    answers: dict[int, Answer] = field(default_factory=dict)
    served_version: int = -1  # the newest version served: no later answer may be older
    build_s: float = 0.0  # what its latest build cost the loop (slices summed)
    # Seconds the refresher is building this question's answer of: a request waits for it.
    pending: dict[int, asyncio.Future[None]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HotQuestion:
    route: str
    key: Hashable
    question: Question


class AnswerCache:
    """Encoded answers of the current (and next) second, at most ``limit`` questions per route."""

    def __init__(self) -> None:
        self._questions: dict[str, OrderedDict[Hashable, Question]] = {}
        self.builds = 0  # answers computed, on the request path or by the refresher
        self.request_builds = 0  # of which on the request path
        self.revalidating = False  # a refresher keeps hot questions built (api/refresh.py)

    async def awaited(
        self,
        route: str,
        key: Hashable,
        version: int,
        second: int,
        reader: Callable[[], ModelReader],
        build: Build,
        limit: int = DEFAULT_LIMIT,
    ) -> Answer:
        """``answer``, but when the refresher is building this question's answer of ``second``
        and none is stored, the request waits for that build instead of making its own on the
        loop (which would hold up every other request)."""
        questions = self._questions.get(route)
        question = questions.get(key) if questions is not None else None
        if question is not None and second not in question.answers:
            pending = question.pending.get(second)
            if pending is not None:
                await asyncio.shield(pending)
        return self.answer(route, key, version, second, reader, build, limit)

    def answer(
        self,
        route: str,
        key: Hashable,
        version: int,
        second: int,
        reader: Callable[[], ModelReader],
        build: Build,
        limit: int = DEFAULT_LIMIT,
    ) -> Answer:
        """The answer to ``key`` as of ``second``: stored, else built now at ``version``."""
        questions = self._questions.setdefault(route, OrderedDict())
        question = questions.get(key)
        if question is None:
            question = questions[key] = Question(build, second)
            if len(questions) > limit:
                questions.popitem(last=False)  # the least recently asked
        else:
            questions.move_to_end(key)
            question.asked_us = max(question.asked_us, second)
        answer = question.answers.get(second)
        stale_ok = self.revalidating and question.build_s >= CHEAP_BUILD_S
        if answer is not None and (
            answer.version == version or (stale_ok and answer.version >= question.served_version)
        ):
            question.served_version = max(question.served_version, answer.version)
            return answer
        started = time.perf_counter()
        answer = Answer(to_end(build(reader().at_second(second), second)), version, second)
        question.build_s = time.perf_counter() - started
        self.request_builds += 1
        self.store(question, answer)
        question.served_version = version
        return answer

    def hot(self, since_us: int) -> list[HotQuestion]:
        """The questions asked at or after ``since_us``, most recently asked last."""
        return [
            HotQuestion(route, key, question)
            for route, questions in self._questions.items()
            for key, question in questions.items()
            if question.asked_us >= since_us
        ]

    def store(self, question: Question, answer: Answer) -> None:
        """Keep ``answer`` unless a newer one of its second is there; drop earlier seconds."""
        self.builds += 1
        held = question.answers.get(answer.second)
        if held is None or held.version <= answer.version:
            question.answers[answer.second] = answer
        for second in [s for s in question.answers if s < answer.second - US_PER_S]:
            del question.answers[second]

    def __len__(self) -> int:
        return sum(len(questions) for questions in self._questions.values())


def encoded(answer: Any) -> bytes:
    return orjson.dumps(answer)
