"""The work behind ``callpulse ingest ...`` (``commands`` holds the command-line signatures).

Each command prints a JSON summary (inputs, events, skipped and refused counts) when it ends
and exits 1 when any input was refused, so scripts notice; every refusal is also reported on
stderr with its place and sent to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import typer

from callpulse.adapters.asterisk import QueueLogMapper
from callpulse.adapters.asterisk_agents import AgentRoster
from callpulse.adapters.config import AdapterConfigError, AdaptersConfig, load_adapters_config
from callpulse.adapters.core import Event, Gate, IngestStats, Refusal, split_outcomes
from callpulse.adapters.follow import Position
from callpulse.adapters.payloads import (
    AdapterContext,
    Source,
    admit_all,
    body_documents,
    inputs_of,
)
from callpulse.adapters.publish import kafka_sink
from callpulse.adapters.queue_log import QueueLogIngest, QueueLogOptions
from callpulse.adapters.state import StateFileError, load_state
from callpulse.adapters.twilio import TaskTimeline
from callpulse.cli import _refuse_insecure, _settings
from callpulse.kafka import ensure_topics
from callpulse.pseudonym import pseudonymiser_for
from callpulse.settings import Settings
from stream.kpi.timeutil import US_PER_S, TimestampError, parse_ts_us
from stream.validation import EventValidator

FROM_MARGIN_S = 60.0  # the default --from stays this far inside the retention


def _fail(message: str) -> typer.Exit:
    typer.echo(f"callpulse ingest: {message}", err=True)
    return typer.Exit(2)


def _setup() -> tuple[Settings, AdaptersConfig]:
    settings = _settings()
    _refuse_insecure(settings, "ingest", serves_http=False)
    try:
        return settings, load_adapters_config(settings.adapters_config)
    except AdapterConfigError as exc:
        raise _fail(str(exc)) from None


def _gate(settings: Settings) -> Gate:
    return Gate(EventValidator(max_past_s=settings.retention_s, max_future_s=settings.max_future_s))


def _report(message: str) -> None:
    typer.echo(f"callpulse ingest: {message}", err=True)


def _finish(stats: IngestStats) -> None:
    typer.echo(json.dumps(stats.summary()))
    raise typer.Exit(1 if stats.refused else 0)


def from_time(text: str | None, retention_s: float, now_s: float) -> float:
    """``--from`` as epoch seconds; by default just inside the retention (older is refused)."""
    if text is None:
        return now_s - retention_s + FROM_MARGIN_S
    try:
        value: object = float(text)
    except ValueError:
        value = text
    try:
        return parse_ts_us(value) / US_PER_S
    except TimestampError as exc:
        raise _fail(f"--from: {exc}") from None


def run_queue_log(
    path: str, follow: bool, from_: str | None, state_file: Path | None, poll_s: float
) -> None:
    settings, config = _setup()
    try:
        state = load_state(state_file)
    except StateFileError as exc:
        raise _fail(str(exc)) from None
    if path != "-" and not Path(path).exists():
        raise _fail(f"{path}: no such file or directory")
    start_s = from_time(from_, settings.retention_s, time.time())
    options = QueueLogOptions(path, follow, start_s, state_file, poll_s)
    mapper = QueueLogMapper(AgentRoster.from_json(state.roster), config.agent_aliases)
    _finish(asyncio.run(_queue_log(settings, mapper, options, state.position)))


async def _queue_log(
    settings: Settings, mapper: QueueLogMapper, options: QueueLogOptions, saved: Position | None
) -> IngestStats:
    await ensure_topics(settings)
    async with kafka_sink(settings) as sink:
        pseudonymise = pseudonymiser_for(settings)
        ingest = QueueLogIngest(mapper, _gate(settings), sink, options, pseudonymise, _report)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, ingest.stop.set)  # finish the batch, save, stop
        return await ingest.run(saved)


def run_payloads(source: Source, file: str, mapping: str | None = None) -> None:
    settings, config = _setup()
    if mapping is not None and mapping not in config.generic:
        known = ", ".join(sorted(config.generic)) or "none configured"
        raise _fail(f"no generic mapping {mapping!r} ({known})")
    body = sys.stdin.buffer.read() if file == "-" else _read(file)
    stats = IngestStats()
    inputs = inputs_of(
        source, body_documents(body, form=False), AdapterContext(config, TaskTimeline()), mapping
    )
    events, refusals = split_outcomes(admit_all(inputs, _gate(settings), stats))
    for refusal in refusals:
        _report(f"{file}: payload {refusal.index}: refused ({refusal.reason}): {refusal.detail}")
    asyncio.run(_send(settings, source, events, refusals))
    _finish(stats)


def _read(file: str) -> bytes:
    try:
        return Path(file).read_bytes()
    except OSError as exc:
        raise _fail(f"{file}: {exc.strerror}") from None


async def _send(
    settings: Settings, source: str, events: list[Event], refusals: list[Refusal]
) -> None:
    await ensure_topics(settings)
    async with kafka_sink(settings) as sink:
        await sink.send(events, refusals, source=f"file:{source}")
