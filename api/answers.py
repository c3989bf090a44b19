"""KPI answers encoded once, then served as the same bytes to every client asking the same thing.

An answer is a function of the question (route and normalised query parameters), the read model
and the API clock. The model counts every changelog record it applies (``ReadModel.version``),
and a cached answer is built by a reader whose clock is pinned to the whole second
(``ModelReader.at_second``), so the pair (version, second) names everything an answer depends on
besides the question. While it holds, 200 clients polling the same wallboard question cost one
build (about 100 ms for 200 queues) and 199 dictionary look-ups; when the model changes or the
second turns, every stored answer is dropped and the next request builds afresh.

What is stored is an ``Answer``: the JSON bytes, and on first demand their strong validator
(ETag) and their gzip form, so a client that sends ``If-None-Match`` or ``Accept-Encoding: gzip``
costs a comparison or the write of ~25 KB instead of 287 KB, never a compression of its own
(api/representation.py chooses what each request gets).
"""

from __future__ import annotations

import gzip
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import orjson

from stream.kpi.timeutil import US_PER_S

DEFAULT_LIMIT = 8  # distinct questions kept per route: wallboards ask the same few
Stamp = tuple[int, int]  # (read-model version, clock second as epoch µs)
# zlib level 5: 287 KB of /v1/kpis (200 queues) to 26 KB in ~2 ms, once per stamp; level 1
# gives 35 KB in ~1 ms, level 9 23 KB in ~11 ms, all on the event loop.
GZIP_LEVEL = 5


def second_us(now_us: int) -> int:
    """``now_us`` down to its whole second: the instant a cached answer's live figures are at."""
    return now_us - now_us % US_PER_S


class Answer:
    """One encoded answer; its validator and gzip form are made once, when first asked for."""

    __slots__ = ("_etag", "_gzipped", "body")

    def __init__(self, body: bytes) -> None:
        self.body = body
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


class AnswerCache:
    """Encoded answers of the current stamp only, at most ``limit`` questions per route."""

    def __init__(self) -> None:
        self._stamp: Stamp | None = None
        self._answers: dict[str, OrderedDict[Hashable, Answer]] = {}
        self.builds = 0  # answers computed rather than served from here

    def answer(
        self,
        route: str,
        question: Hashable,
        stamp: Stamp,
        build: Callable[[], bytes],
        limit: int = DEFAULT_LIMIT,
    ) -> Answer:
        """The stored answer to ``question`` at ``stamp``, else ``build()``'s, stored."""
        if stamp != self._stamp:
            # A new version or second: no stored answer is current any more.
            self._answers.clear()
            self._stamp = stamp
        answers = self._answers.setdefault(route, OrderedDict())
        answer = answers.get(question)
        if answer is not None:
            answers.move_to_end(question)
            return answer
        answer = Answer(build())
        self.builds += 1
        answers[question] = answer
        if len(answers) > limit:
            answers.popitem(last=False)  # the least recently asked
        return answer

    def body(
        self,
        route: str,
        question: Hashable,
        stamp: Stamp,
        build: Callable[[], bytes],
        limit: int = DEFAULT_LIMIT,
    ) -> bytes:
        """Only the bytes of ``answer``: what the SSE stream writes."""
        return self.answer(route, question, stamp, build, limit).body

    def __len__(self) -> int:
        return sum(len(answers) for answers in self._answers.values())


def encoded(answer: Any) -> bytes:
    return orjson.dumps(answer)
