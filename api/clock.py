"""The API's clock, in one place so tests can freeze it (``monkeypatch api.clock.now_us``)."""

from __future__ import annotations

import time

from stream.kpi.timeutil import US_PER_S


def now_us() -> int:
    return int(time.time() * US_PER_S)
