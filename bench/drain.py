"""Drain a pre-filled topic with a real worker process and read back how fast it went.

Shared by the throughput, replay and profile scenarios. A run is: fill the events topic, start
the worker, wait (watching only committed offsets) until its groups have committed everything,
stop it, then read the worker's changelog for the events counted and the timestamps of the
first and last counter writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

from bench import kafkaio, naive_faust
from bench.events import Message
from bench.infra import Processes, changelog_topic, cpu_s, rss_mb, wait_until
from stream import records

DRAIN_TIMEOUT_S = 3600.0
_TOTALS_PREFIX = records.TOTALS + records.SEP


@dataclass(frozen=True, slots=True)
class Drain:
    """One worker run over a pre-filled topic."""

    produced: int
    processed: int
    rate: float | None  # events/s from the first counter write to the last
    startup_s: float | None  # process start to the first counter write
    wall_s: float  # process start to the last counter write
    worker_cpu_s: float
    broker_cpu_s: float
    worker_rss_mb: float
    changelog_records: int
    workers: int = 1  # worker processes in the group (CPU and RSS are their sums)

    @property
    def complete(self) -> bool:
        return self.processed == self.produced

    def describe(self) -> str:
        per_event_us = self.worker_cpu_s / max(self.processed, 1) * 1e6
        workers = "" if self.workers == 1 else f"{self.workers} workers (CPU and RSS summed), "
        return (
            f"{workers}{self.processed:,}/{self.produced:,} events, "
            f"started in {self.startup_s or 0:.1f} s, "
            f"worker CPU {self.worker_cpu_s:.1f} s ({per_event_us:.0f} us/event incl. startup), "
            f"broker CPU {self.broker_cpu_s:.1f} s, {self.changelog_records:,} changelog records, "
            f"worker RSS {self.worker_rss_mb:.0f} MB"
        )


def callpulse_count(key: bytes, value: bytes | None) -> int | None:
    """Events counted by a ``t`` (totals) record of the state changelog; None for others."""
    if key[1:2] != records.TOTALS.encode():  # cheap test before decoding the JSON key
        return None
    record_key = orjson.loads(key)
    if not isinstance(record_key, str) or not record_key.startswith(_TOTALS_PREFIX):
        return None
    if value is None:
        return 0
    return int(sum(orjson.loads(value)["events"].values()))


def fill(
    bootstrap: str, topic: str, partitions: int, messages: Iterable[Message]
) -> kafkaio.Filled:
    """Creates ``topic`` and fills it."""
    asyncio.run(kafkaio.create_topic(bootstrap, topic, partitions))
    return asyncio.run(kafkaio.fill_topic(bootstrap, topic, partitions, messages))


def drain_callpulse(
    processes: Processes,
    env: dict[str, str],
    filled: kafkaio.Filled,
    *,
    profile_to: Path | None = None,
    workers: int = 1,
) -> Drain:
    """``workers`` worker processes in one group (scale-out on one box: they share its cores
    with the broker); the profiler, if any, samples the first."""
    bootstrap = env["CALLPULSE_KAFKA_BOOTSTRAP"]
    app_id = env["CALLPULSE_APP_ID"]
    topics = [env["CALLPULSE_EVENTS_TOPIC"], f"{app_id}-routed-events"]
    # Stage one (stream.ingress) commits in its own group, stage two in the app's.
    groups = {f"{app_id}-validate": topics[:1], app_id: topics[1:]}
    broker_cpu0 = _broker_cpu(processes)
    started = time.time()
    names = ["worker", *(f"worker-{number}" for number in range(2, workers + 1))]
    pids = [processes.start_callpulse(name, env, "worker").pid for name in names]
    spy = _start_profiler(pids[0], profile_to) if profile_to else None
    try:
        kafkaio.wait_drained(bootstrap, groups, filled.ends, DRAIN_TIMEOUT_S, processes.check_alive)
        time.sleep(1.0)  # let the last buffered changelog writes go out
        worker_cpu = sum(cpu_s(pid) for pid in pids)
        rss = sum(rss_mb(pid) for pid in pids)
    finally:
        if spy is not None:
            _stop_profiler(spy)
        for name in names:
            processes.stop(name)
    broker_cpu = _broker_cpu(processes) - broker_cpu0
    progress = asyncio.run(
        kafkaio.changelog_progress(bootstrap, changelog_topic(env), callpulse_count)
    )
    # Stage one forwards before stage two counts: the run starts at the first forward.
    first_ms = asyncio.run(kafkaio.first_timestamp_ms(bootstrap, topics[1]))
    drain = _drain(filled.events, progress, started, worker_cpu, broker_cpu, rss, first_ms)
    return replace(drain, workers=workers)


def drain_naive(
    processes: Processes,
    bootstrap: str,
    topic: str,
    partitions: int,
    filled: kafkaio.Filled,
    seconds: float,
) -> Drain:
    """The baseline on the same topic, for ``seconds`` once it has started (or to the end)."""
    app_id = f"naive-{topic}"
    env = {
        "NAIVE_BOOTSTRAP": bootstrap,
        "NAIVE_TOPIC": topic,
        "NAIVE_APP_ID": app_id,
        "NAIVE_PARTITIONS": str(partitions),
    }
    broker_cpu0 = _broker_cpu(processes)
    started = time.time()
    argv = [sys.executable, "-m", "bench.naive_faust"]
    worker = processes.start("naive", argv, {**_base_env(), **env})
    try:
        _wait_started(bootstrap, app_id, topic, naive_faust.changelog_topic(app_id), processes)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(1.0)
            processes.check_alive()
            _, committed = asyncio.run(kafkaio.group_offsets(bootstrap, app_id, [topic]))
            if kafkaio.behind(filled.ends, committed) == 0:
                break
        worker_cpu, rss = cpu_s(worker.pid), rss_mb(worker.pid)
    finally:
        processes.stop("naive")
    broker_cpu = _broker_cpu(processes) - broker_cpu0
    progress = asyncio.run(
        kafkaio.changelog_progress(
            bootstrap, naive_faust.changelog_topic(app_id), naive_faust.count_of
        )
    )
    return _drain(filled.events, progress, started, worker_cpu, broker_cpu, rss)


def _wait_started(
    bootstrap: str, group: str, topic: str, changelog: str, processes: Processes
) -> None:
    """Until the group's first commit or its table's first changelog record: the baseline's
    clock starts once it really runs. (On a topic of millions of events Faust writes its table
    for minutes before its first commit.)"""

    def running() -> bool:
        if asyncio.run(kafkaio.group_offsets(bootstrap, group, [topic]))[1]:
            return True
        return any(asyncio.run(kafkaio.end_offsets(bootstrap, [changelog])).values())

    wait_until(running, 120.0, f"{group} to start", processes.check_alive, every_s=1.0)


def _drain(
    produced: int,
    progress: kafkaio.Progress,
    started: float,
    worker_cpu: float,
    broker_cpu: float,
    rss: float,
    started_ms: int | None = None,
) -> Drain:
    first_ms = progress.first_ms if started_ms is None else started_ms
    first_s = first_ms / 1000 if first_ms is not None else None
    last_s = progress.last_ms / 1000 if progress.last_ms is not None else time.time()
    return Drain(
        produced=produced,
        processed=progress.events,
        rate=progress.rate(started_ms),
        startup_s=None if first_s is None else first_s - started,
        wall_s=last_s - started,
        worker_cpu_s=worker_cpu,
        broker_cpu_s=broker_cpu,
        worker_rss_mb=rss,
        changelog_records=progress.records,
    )


def _broker_cpu(processes: Processes) -> float:
    return cpu_s(processes.broker.process.pid) if processes.broker else 0.0


def _base_env() -> dict[str, str]:
    return dict(os.environ)


def _start_profiler(pid: int, output: Path) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the worker (raw collapsed stacks), or None when py-spy is missing."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("bench: py-spy not installed (pip install py-spy): no profile", file=sys.stderr)
        return None
    argv = [spy, "record", "--pid", str(pid), "--rate", "100", "--gil"]
    argv += ["--format", "raw", "--full-filenames", "-o", str(output)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop_profiler(spy: subprocess.Popen[bytes]) -> None:
    """SIGINT makes py-spy write what it sampled so far."""
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            spy.kill()
        spy.wait()
