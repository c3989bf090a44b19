"""Scenario 3: ``GET /v1/kpis`` under 200 concurrent clients, and 1,000 SSE subscribers.

Three loads on ``GET /v1/kpis``: wrk's closed loop (200 connections, each asking again as soon
as it is answered: the stress figure) without and with ``Accept-Encoding: gzip`` (what browsers
and Grafana send), then 200 wallboards polling once a second, open loop (``bench.wallboard``).

A real ``callpulse api`` process serves a read model of 200 queues: an hour of traffic built
in-process (``bench.state``) and written to the state changelog it replays, exactly the
records a worker writes. The load comes from ``wrk`` when installed (Debian: ``apt-get install
wrk``), else from an httpx client, which on two cores competes with the API for CPU.
While the SSE subscribers are held, more events keep going through the same builder and their
changed records into the changelog, so updates flow as from a live worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import httpx

from bench import kafkaio
from bench.events import Traffic, event_chunks, rfc3339
from bench.infra import (
    AUTH_HEADERS,
    READ_TOKEN,
    Processes,
    callpulse_env,
    changelog_topic,
    cpu_s,
    rss_mb,
    start_api,
)
from bench.options import Options
from bench.report import Result, percentile
from bench.sse import hold_subscribers
from bench.state import StateBuilder, changelog_messages, publish, write_changelog
from bench.wallboard import WallboardLoad, in_own_process
from stream.kpi.timeutil import US_PER_S

TARGET_P99_MS = 20.0
API_EVENTS = 100_000
KPIS_PATH = "/v1/kpis?window=15m"
_WRK_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_WRK_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_WRK_DONE = re.compile(r"^\s+(\d+) requests in", re.MULTILINE)
_WRK_TIMEOUTS = re.compile(r"timeout (\d+)")
REQUEST_TIMEOUT_S = 120.0
SEQUENTIAL_MAX = 20
SEQUENTIAL_BUDGET_S = 20.0
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
GZIP = {"Accept-Encoding": "gzip"}


def api(options: Options) -> list[Result]:
    with Processes(options.out_dir / "logs", "api") as processes:
        bootstrap = processes.start_broker()
        env = callpulse_env(bootstrap, "api", options.partitions)
        now_us = int(time.time()) * US_PER_S
        builder = StateBuilder(options.partitions, env["CALLPULSE_PSEUDONYM_KEY"])
        spec = Traffic(API_EVENTS, now_us - 3600 * US_PER_S, now_us, queues=options.queues)
        for chunk in event_chunks(spec):
            builder.add(chunk, now_us)
        builder.state.store.take_written()
        publish(bootstrap, changelog_topic(env), options.partitions, builder.state.store)
        url = start_api(processes, env)
        api_pid = processes.running["api"].pid
        reply = httpx.get(url + KPIS_PATH, headers=AUTH_HEADERS, timeout=REQUEST_TIMEOUT_S)
        queues = len(reply.json()["queues"])
        single = _sequential_ms(url)
        loads = [_measured(api_pid, url, options, headers) for headers in ({}, GZIP)]
        wallboard = asyncio.run(_wallboards_with_updates(options, bootstrap, env, url, builder))
        idle_rss = rss_mb(api_pid)
        sse = asyncio.run(_sse_with_updates(options, bootstrap, env, url, builder, api_pid))
        rows = [_load_results(options, queues, single, load, cpu) for load, cpu in loads]
        wallboard_rows = _wallboard_results(options, wallboard)
        return [*rows[0], *rows[1], *wallboard_rows, *_sse_results(options, sse, idle_rss)]


def _measured(
    api_pid: int, url: str, options: Options, headers: Mapping[str, str]
) -> tuple[Load, float]:
    """A load, and the API's own CPU per request under it: the figure that bounds requests/s."""
    cpu_before = cpu_s(api_pid)
    load = _load(url, options, headers)
    return load, 1000 * (cpu_s(api_pid) - cpu_before) / max(load.completed, 1)


def _sequential_ms(url: str) -> list[float]:
    """One client, one request at a time: the service time with no queueing."""
    timings: list[float] = []
    deadline = time.monotonic() + SEQUENTIAL_BUDGET_S
    with httpx.Client(base_url=url, headers=AUTH_HEADERS, timeout=REQUEST_TIMEOUT_S) as client:
        while len(timings) < SEQUENTIAL_MAX and (not timings or time.monotonic() < deadline):
            started = time.perf_counter()
            client.get(KPIS_PATH).raise_for_status()
            timings.append((time.perf_counter() - started) * 1000)
    return timings


@dataclass(frozen=True, slots=True)
class Load:
    p50_ms: float | None  # None when no request completed
    p99_ms: float | None
    per_s: float
    tool: str
    completed: int
    timeouts: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)  # beyond the token

    @property
    def label(self) -> str:
        encoding = self.headers.get("Accept-Encoding")
        return f"Accept-Encoding: {encoding}" if encoding else "no Accept-Encoding"


def _load(url: str, options: Options, headers: Mapping[str, str]) -> Load:
    wrk = shutil.which("wrk")
    if wrk is None:
        load = asyncio.run(_httpx_load(url, options.api_clients, options.api_s, headers))
        return replace(load, headers=headers)
    argv = [wrk, "-t2", f"-c{options.api_clients}", f"-d{options.api_s:.0f}s", "--latency"]
    argv += ["--timeout", f"{REQUEST_TIMEOUT_S:.0f}s"]
    argv += ["-H", f"Authorization: Bearer {READ_TOKEN}"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    output = subprocess.run([*argv, url + KPIS_PATH], capture_output=True, text=True, check=True)
    return replace(parse_wrk(output.stdout), headers=headers)


def parse_wrk(output: str) -> Load:
    """p50, p99, requests/s, completed requests and timeouts from ``wrk --latency`` output."""
    latencies = {int(q): float(v) * _UNIT_MS[unit] for q, v, unit in _WRK_LATENCY.findall(output)}
    rate, done = _WRK_RATE.search(output), _WRK_DONE.search(output)
    if rate is None or done is None:
        raise ValueError(f"unexpected wrk output:\n{output}")
    completed = int(done.group(1))
    timeouts = _WRK_TIMEOUTS.search(output)
    return Load(
        latencies.get(50) if completed else None,
        latencies.get(99) if completed else None,
        float(rate.group(1)),
        "wrk",
        completed,
        int(timeouts.group(1)) if timeouts else 0,
    )


async def _httpx_load(url: str, clients: int, seconds: float, headers: Mapping[str, str]) -> Load:
    timings: list[float] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients)

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            (await client.get(KPIS_PATH)).raise_for_status()
            timings.append((time.perf_counter() - started) * 1000)

    async with httpx.AsyncClient(
        base_url=url,
        headers={**AUTH_HEADERS, **headers},
        timeout=REQUEST_TIMEOUT_S,
        limits=limits,
    ) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
    return Load(
        percentile(timings, 50) if timings else None,
        percentile(timings, 99) if timings else None,
        len(timings) / seconds,
        "httpx",
        len(timings),
    )


async def _wallboards_with_updates(
    options: Options, bootstrap: str, env: Mapping[str, str], url: str, builder: StateBuilder
) -> WallboardLoad:
    """The wallboards poll while the figures change (twice a second, as in the SSE run), so
    they get new answers as well as ``304``s."""
    stop = asyncio.Event()
    updater = asyncio.create_task(_updates(bootstrap, env, builder, options, stop))
    try:
        # In a process of its own: the updates are built on this loop, and would hold up the
        # pollers' timers (latency counted from when a request was due).
        return await asyncio.to_thread(
            in_own_process, url, KPIS_PATH, READ_TOKEN, options.api_clients, options.api_s
        )
    finally:
        stop.set()
        await updater


async def _sse_with_updates(
    options: Options,
    bootstrap: str,
    env: Mapping[str, str],
    url: str,
    builder: StateBuilder,
    api_pid: int,
) -> dict[str, float]:
    stop = asyncio.Event()
    updater = asyncio.create_task(_updates(bootstrap, env, builder, options, stop))
    cpu_before = cpu_s(api_pid)
    try:
        held = await hold_subscribers(url, READ_TOKEN, options.sse_subscribers, options.sse_s)
    finally:
        stop.set()
        published = await updater
    held["api_cpu_share"] = (cpu_s(api_pid) - cpu_before) / max(held["held_s"], 1e-9)
    held["rss_mb"] = rss_mb(api_pid)
    held["published"] = published
    return held


async def _updates(
    bootstrap: str,
    env: Mapping[str, str],
    builder: StateBuilder,
    options: Options,
    stop: asyncio.Event,
) -> int:
    """Live events every 0.5 s through the builder; their changed records into the changelog."""
    client = kafkaio.producer(bootstrap)
    await client.start()
    topic = changelog_topic(env)
    published = 0
    try:
        tick = 0
        while not stop.is_set():
            now_us = int(time.time() * US_PER_S)
            spec = Traffic(
                50, now_us - US_PER_S, now_us, options.queues, seed=tick, id_prefix=f"u{tick}-"
            )
            for chunk in event_chunks(spec):
                for event in chunk:
                    event["ts"] = rfc3339(now_us)
                builder.add(chunk, now_us)
            keys = builder.state.store.take_written()
            changes = changelog_messages(builder.state.store, keys)
            published += await write_changelog(client, topic, options.partitions, changes)
            tick += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        await client.stop()
    return published


def _load_results(
    options: Options, queues: int, single: list[float], load: Load, load_cpu_ms: float
) -> list[Result]:
    serial = f"1 client: p50 {percentile(single, 50):,.1f} ms over {len(single)} requests"
    note = (
        f"{queues} queues; {options.api_clients} connections ({load.tool}, closed loop), "
        f"{load.label}; {load.completed:,} requests completed ({load.per_s:,.1f}/s, "
        f"{load.timeouts} timed out at {REQUEST_TIMEOUT_S:.0f} s), "
        f"API CPU {load_cpu_ms:.2f} ms/request; {serial}"
    )
    which = f"{options.api_clients} connections, {load.label}"
    return _p50_p99(f"{queues} queues, {which}", which, load.p50_ms, load.p99_ms, note)


def _wallboard_results(options: Options, load: WallboardLoad) -> list[Result]:
    which = f"{options.api_clients} wallboards polling 1/s (gzip, If-None-Match)"
    note = (
        f"open loop, latency from when each request was due; {load.requests:,} requests "
        f"({load.per_s:,.1f}/s), {load.not_modified:,} answered 304, "
        f"{load.mean_body_bytes:,.0f} body bytes a request on average, {load.errors} errors"
    )
    return _p50_p99(which, which, load.p50_ms, load.p99_ms, note)


def _p50_p99(
    p50_which: str, p99_which: str, p50_ms: float | None, p99_ms: float | None, note: str
) -> list[Result]:
    """A load's two rows: its p50, and its p99 against the target."""
    return [
        Result(f"3. GET /v1/kpis p50, {p50_which}", p50_ms, "ms", higher_is_better=False),
        Result(
            f"3. GET /v1/kpis p99, {p99_which}",
            p99_ms,
            "ms",
            target=TARGET_P99_MS,
            higher_is_better=False,
            note=note,
        ),
    ]


def _sse_results(options: Options, sse: dict[str, float], idle_rss: float) -> list[Result]:
    sse_note = (
        f"{sse['connected']:.0f} connected, {sse['held']:.0f} still receiving at the end of "
        f"{sse['held_s']:.0f} s; updates per subscriber p50 {sse['updates_p50']:.1f} "
        f"(min {sse['updates_min']:.0f}); API CPU {100 * sse['api_cpu_share']:.0f} % of a core, "
        f"RSS {sse['rss_mb']:.0f} MB (before the subscribers: {idle_rss:.0f} MB); "
        f"{sse['published']:.0f} changelog records published"
    )
    return [
        Result(
            "3. SSE subscribers receiving updates",
            sse["held"],
            "subscribers",
            target=float(options.sse_subscribers),
            note=sse_note,
        ),
    ]
