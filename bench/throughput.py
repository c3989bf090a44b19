"""Scenarios 1 and 5: events/s from a pre-filled topic, and the time to replay a day.

Each mode gets its own broker: fill the topic, drain it with ``callpulse worker`` (full KPI
logic: validation, dedupe, call state, histograms, changelog), then run the naive Faust
baseline over the same topic, one after the other so they never share the two cores.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from bench.drain import Drain, drain_callpulse, drain_naive, fill
from bench.events import Message, Traffic, batched_messages, event_chunks, single_messages
from bench.infra import Processes, callpulse_env
from bench.options import Options
from bench.report import Result
from stream.kpi.timeutil import US_PER_S

TARGET_EVENTS_PER_S = 50_000.0
TARGET_REPLAY_S = 240.0
# Event-time density of the pre-filled topics: the "very large centre", ten million
# events a day. Density matters: it decides how many minute buckets one batch touches.
DAY_EVENTS = 10_000_000
CENTRE_EVENTS_PER_S = DAY_EVENTS / 86400
# Recent enough for the worker's retention (3 days), old enough that no call runs into the future.
SPAN_END_AGO_S = 1800


def traffic(events: int, queues: int, prefix: str) -> Traffic:
    """``events`` of the very large centre's traffic, ending half an hour ago."""
    end_us = (int(time.time()) - SPAN_END_AGO_S) * US_PER_S
    start_us = end_us - int(events / CENTRE_EVENTS_PER_S * US_PER_S)
    return Traffic(events, start_us, end_us, queues=queues, id_prefix=prefix)


def messages(spec: Traffic, per_message: int) -> Iterator[Message]:
    for chunk in event_chunks(spec):
        if per_message == 1:
            yield from single_messages(chunk)
        else:
            yield from batched_messages(chunk, per_message)


# Runs of this invocation by (events, per message, workers): the replay reuses the batched
# throughput run when they agree (same traffic, same density) instead of measuring it twice.
_RUNS: dict[tuple[int, int, int], tuple[Drain, Drain | None]] = {}


def run_mode(
    options: Options,
    name: str,
    spec: Traffic,
    per_message: int,
    *,
    baseline: bool = True,
    workers: int = 1,
) -> tuple[Drain, Drain | None]:
    """callpulse's worker(s), then (optionally) the naive baseline, on one pre-filled topic."""
    run = (spec.events, per_message, workers)
    if run not in _RUNS:
        _RUNS[run] = _run_mode(options, name, spec, per_message, baseline, workers)
    return _RUNS[run]


def _run_mode(
    options: Options, name: str, spec: Traffic, per_message: int, baseline: bool, workers: int
) -> tuple[Drain, Drain | None]:
    with Processes(options.out_dir / "logs", name) as processes:
        bootstrap = processes.start_broker()
        env = callpulse_env(bootstrap, name, options.partitions)
        topic = env["CALLPULSE_EVENTS_TOPIC"]
        filled = fill(bootstrap, topic, options.partitions, messages(spec, per_message))
        print(
            f"bench: {name}: {filled.events:,} events in {filled.messages:,} messages", flush=True
        )
        ours = drain_callpulse(processes, env, filled, workers=workers)
        print(f"bench: {name}: callpulse {_rate(ours)}; {ours.describe()}", flush=True)
        naive = None
        if baseline:
            try:
                naive = drain_naive(
                    processes, bootstrap, topic, options.partitions, filled, options.baseline_s
                )
            except TimeoutError as exc:
                # On a topic of millions of events the baseline may not get to its first
                # commit in time: callpulse's figure stands, with no ratio.
                print(f"bench: {name}: naive baseline gave no figure: {exc}", flush=True)
            else:
                print(f"bench: {name}: naive {_rate(naive)}; {naive.describe()}", flush=True)
        return ours, naive


def _rate(run: Drain) -> str:
    return "no rate" if run.rate is None else f"{run.rate:,.0f} events/s"


def throughput(options: Options) -> list[Result]:
    results = []
    for label, events, per_message in (
        ("1 event/message", options.single_events, 1),
        (f"{options.per_message} events/message", options.batched_events, options.per_message),
    ):
        spec = traffic(events, options.queues, prefix=f"t{per_message}-")
        ours, naive = run_mode(options, f"throughput-{per_message}", spec, per_message)
        results.append(_throughput_result(f"1. throughput, {label}", ours, naive))
    return results


def _throughput_result(scenario: str, ours: Drain, naive: Drain | None) -> Result:
    note = ours.describe()
    if not ours.complete:
        note = f"INCOMPLETE: {note}"
    return Result(
        scenario=scenario,
        measured=ours.rate,
        unit="events/s",
        target=TARGET_EVENTS_PER_S,
        baseline=naive.rate if naive else None,
        baseline_label="naive Faust",
        note=note,
    )


def replay(options: Options) -> list[Result]:
    """Wall time from worker start to the last event, on the first part of a day's traffic
    (same density as the whole day); extrapolated to the whole day unless ``--full``."""
    spec = traffic(options.replay_events, options.queues, prefix="r-")
    workers = options.replay_workers
    ours, naive = run_mode(options, "replay", spec, options.per_message, workers=workers)
    measured_s = ours.wall_s
    target = options.replay_target
    extrapolated = _extrapolate(ours, target)
    naive_s = target / naive.rate if naive and naive.rate else None
    results = [
        Result(
            scenario=f"5. replay {ours.processed:,} events, measured"
            + ("" if workers == 1 else f", {workers} workers"),
            measured=measured_s,
            unit="s",
            higher_is_better=False,
            note=ours.describe() if ours.complete else f"INCOMPLETE: {ours.describe()}",
        )
    ]
    if ours.processed != target:
        results.append(
            Result(
                scenario=f"5. replay {target:,} events, extrapolated",
                measured=extrapolated,
                unit="s",
                # No target: the extrapolation understates, as per-event cost grows with the
                # state a long replay builds up (docs/PERFORMANCE.md, "Replay"); only a real
                # replay (--replay-events 10000000, or --full) is held to it.
                higher_is_better=False,
                baseline=naive_s,
                baseline_label="naive Faust, extrapolated",
                note="startup + events / measured rate; a real replay is slower (state grows)",
            )
        )
    else:
        results[0] = Result(
            scenario=results[0].scenario,
            measured=measured_s,
            unit="s",
            target=TARGET_REPLAY_S,
            higher_is_better=False,
            baseline=naive_s,
            baseline_label="naive Faust, extrapolated",
            note=results[0].note,
        )
    return results


def _extrapolate(run: Drain, events: int) -> float | None:
    if run.rate is None:
        return None
    return (run.startup_s or 0.0) + events / run.rate
