"""CPU of one alert round over 200 queues: the full KPI objects (``ModelFigures``, what rounds read
before) against the rules' own figures (``RuleFigures``), same model, same process.

The model is the API bench's (an hour of 100,000 events over 200 queues, built in-process as
``bench.state`` builds it, fed to a ``ReadModel`` as the changelog would be); ``--dense`` puts
200,000 events in the last 15 minutes. Rounds: ``quiet`` (nothing changed), ``busy`` (every
queue's current minute replaced before each round, as a busy feed does), ``rollover`` (a new
minute each round: every window moves). Run: ``python -m bench.alert_round [--dense]``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

import orjson

from api.alerts.config import AlertConfig
from api.alerts.engine import AlertEngine, FigureSource
from api.alerts.figures import ModelFigures
from api.alerts.light import RuleFigures
from api.readmodel import ReadModel
from api.views import ModelReader
from bench.events import Traffic, event_chunks
from bench.state import StateBuilder, changelog_messages
from stream.kpi.accumulator import KpiAccumulator
from stream.kpi.config import CentreConfig
from stream.kpi.timeutil import BUCKET_US, US_PER_S
from stream.kpi.windows import live_end_us

ROUNDS = 6


def built_model(now_us: int, dense: bool) -> ReadModel:
    builder = StateBuilder(8, "bench-alert-round-key-0123456789abcdef")
    if dense:
        spec = Traffic(200_000, now_us - 900 * US_PER_S, now_us, queues=200)
    else:
        spec = Traffic(100_000, now_us - 3600 * US_PER_S, now_us, queues=200)
    for chunk in event_chunks(spec):
        builder.add(chunk, now_us)
    model = ReadModel()
    for _, key, value in changelog_messages(builder.state.store):
        model.apply(orjson.loads(key), None if value is None else orjson.loads(value))
    return model


def touch(model: ReadModel, now_us: int) -> None:
    """Every queue's current minute gets a new record of one more call offered."""
    current = live_end_us(now_us) - BUCKET_US
    for view in model.queues.values():
        acc = KpiAccumulator()
        acc.merge(view.buckets.get(current) or KpiAccumulator())
        acc.offered += 1
        view.buckets[current] = acc


def rounds_ms(
    model: ReadModel, engine: AlertEngine, source: FigureSource, now_us: int, mode: str
) -> list[float]:
    engine.evaluate(source, now_us)  # the first round raises every alert: not a steady one
    step_us = 60 * US_PER_S if mode == "rollover" else US_PER_S
    found = []
    for n in range(1, ROUNDS + 1):
        if mode == "busy":
            touch(model, now_us)
        started = time.process_time()
        engine.evaluate(source, now_us + n * step_us)
        found.append((time.process_time() - started) * 1000)
    return found


def main() -> None:
    logging.disable(logging.CRITICAL)
    dense = "--dense" in sys.argv
    now_us = (int(time.time()) // 60) * 60 * US_PER_S + 30 * US_PER_S
    centre, config = CentreConfig(), AlertConfig()
    sources: dict[str, Callable[[ModelReader, AlertEngine], FigureSource]] = {
        "ModelFigures (before)": lambda reader, engine: ModelFigures(reader),
        "RuleFigures (after)": lambda reader, engine: RuleFigures(reader, engine.rules),
    }
    for mode in ("quiet", "busy", "rollover"):
        for name, make in sources.items():
            model = built_model(now_us, dense)
            engine = AlertEngine(lambda q: config.rules_for(q, centre.for_queue(q).target))
            source = make(ModelReader(model, centre), engine)
            found = rounds_ms(model, engine, source, now_us, mode)
            shown = " ".join(f"{ms:.1f}" for ms in found)
            print(f"{mode:8} {name:22} round CPU ms: {shown} (median {sorted(found)[3]:.1f})")


if __name__ == "__main__":
    main()
