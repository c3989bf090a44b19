"""KPI answers encoded once, then served as the same bytes to every client asking the same thing.

An answer is a function of the question (route and normalised query parameters), the read model
and the API clock. The model counts every changelog record it applies (``ReadModel.version``),
and a cached answer is built by a reader whose clock is pinned to the whole second
(``ModelReader.at_second``), so the pair (version, second) names everything an answer depends on
besides the question. While it holds, 200 clients polling the same wallboard question cost one
build (about 100 ms for 200 queues) and 199 dictionary look-ups; when the model changes or the
second turns, every stored answer is dropped and the next request builds afresh.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import orjson
from fastapi.responses import Response

from stream.kpi.timeutil import US_PER_S

DEFAULT_LIMIT = 8  # distinct questions kept per route: wallboards ask the same few
Stamp = tuple[int, int]  # (read-model version, clock second as epoch µs)


def second_us(now_us: int) -> int:
    """``now_us`` down to its whole second: the instant a cached answer's live figures are at."""
    return now_us - now_us % US_PER_S


class AnswerCache:
    """Encoded bodies of the current stamp only, at most ``limit`` questions per route."""

    def __init__(self) -> None:
        self._stamp: Stamp | None = None
        self._bodies: dict[str, OrderedDict[Hashable, bytes]] = {}
        self.builds = 0  # answers computed rather than served from here

    def body(
        self,
        route: str,
        question: Hashable,
        stamp: Stamp,
        build: Callable[[], bytes],
        limit: int = DEFAULT_LIMIT,
    ) -> bytes:
        """The stored answer to ``question`` at ``stamp``, else ``build()``'s, stored."""
        if stamp != self._stamp:
            # A new version or second: no stored answer is current any more.
            self._bodies.clear()
            self._stamp = stamp
        bodies = self._bodies.setdefault(route, OrderedDict())
        body = bodies.get(question)
        if body is not None:
            bodies.move_to_end(question)
            return body
        body = build()
        self.builds += 1
        bodies[question] = body
        if len(bodies) > limit:
            bodies.popitem(last=False)  # the least recently asked
        return body

    def __len__(self) -> int:
        return sum(len(bodies) for bodies in self._bodies.values())


def encoded(answer: Any) -> bytes:
    return orjson.dumps(answer)


def json_response(body: bytes) -> Response:
    return Response(body, media_type="application/json")
