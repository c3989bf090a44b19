"""Scenario 4: resident memory with 200 queues, 24 h of buckets and 50,000 calls waiting.

The state is built in-process (``bench.state``: the worker's own validation and processor, then
its retention expiry) and written as the state changelog. Then real processes load it: a
``callpulse worker`` recovers its table from that changelog and a ``callpulse api`` replays it
into its read model; their RSS is the figure. Idle processes of each kind, on an empty app,
give the fixed cost the state adds to.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Mapping

from bench.events import Event, Traffic, event_chunks, queue_name, rfc3339
from bench.infra import Processes, callpulse_env, changelog_topic, rss_mb, start_api, wait_until
from bench.options import Options
from bench.report import Result
from bench.state import StateBuilder, publish
from stream.kpi.timeutil import US_PER_S

TARGET_MB = 300.0
EVENTS_PER_CALL = 6.4
OPEN_CALLS_WITHIN_S = 3 * 3600  # waiting calls older than 4 h are dropped by the worker
SETTLE_S = 3.0


def memory(options: Options) -> list[Result]:
    with Processes(options.out_dir / "logs", "memory") as processes:
        bootstrap = processes.start_broker()
        idle_worker, idle_api = _idle_rss(processes, bootstrap, options)
        env = callpulse_env(bootstrap, "memory", options.partitions)
        started = time.monotonic()
        builder, families = _build(options, env["CALLPULSE_PSEUDONYM_KEY"])
        built_s = time.monotonic() - started
        records = publish(bootstrap, changelog_topic(env), options.partitions, builder.state.store)
        worker_mb = _recovered_worker_rss(processes, env, "worker")
        start_api(processes, env, timeout_s=600)
        api_mb = rss_mb(processes.running["api"].pid)
    shape = (
        f"{options.memory_queues} queues x {options.memory_hours:g} h, "
        f"{options.open_calls:,} open calls"
    )
    detail = (
        f"{builder.state.events:,} events built in {built_s:.0f} s into {records:,} records "
        f"({', '.join(f'{k}: {v:,}' for k, v in families.most_common())})"
    )
    return [
        Result(
            f"4. worker RSS, {shape}",
            worker_mb,
            "MB",
            target=TARGET_MB,
            higher_is_better=False,
            note=f"{detail}; an idle worker: {idle_worker:.0f} MB",
        ),
        Result(
            f"4. API RSS, {shape}",
            api_mb,
            "MB",
            target=TARGET_MB,
            higher_is_better=False,
            note=f"an idle API: {idle_api:.0f} MB",
        ),
    ]


def _idle_rss(processes: Processes, bootstrap: str, options: Options) -> tuple[float, float]:
    env = callpulse_env(bootstrap, "memory-idle", options.partitions)
    worker = _recovered_worker_rss(processes, env, "idle-worker")
    processes.stop("idle-worker")
    start_api(processes, env)
    api = rss_mb(processes.running["api"].pid)
    processes.stop("api")
    return worker, api


def _recovered_worker_rss(processes: Processes, env: Mapping[str, str], name: str) -> float:
    """A worker's RSS once Faust says it is ready (its table recovered from the changelog)."""
    worker = processes.start_callpulse(name, env, "worker")
    log = processes.log_dir / f"{name}.log"

    def ready() -> bool:
        return "Ready" in log.read_text(errors="replace")

    wait_until(ready, 900.0, f"{name} to recover", processes.check_alive, every_s=0.5)
    time.sleep(SETTLE_S)
    return rss_mb(worker.pid)


def _build(options: Options, pseudonym_key: str) -> tuple[StateBuilder, Counter[str]]:
    now_us = int(time.time()) * US_PER_S
    end_us = now_us - 900 * US_PER_S  # every call of the day has finished by now
    minutes = options.memory_hours * 60
    calls = options.memory_queues * minutes * options.calls_per_queue_minute
    spec = Traffic(
        round(calls * EVENTS_PER_CALL),
        end_us - int(options.memory_hours * 3600 * US_PER_S),
        end_us,
        queues=options.memory_queues,
        id_prefix="m-",
    )
    builder = StateBuilder(options.partitions, pseudonym_key, live=True)
    for chunk in event_chunks(spec):
        builder.add(chunk, now_us)
    builder.add(open_calls(options.open_calls, options.memory_queues, now_us), now_us)
    builder.expire(now_us)
    families = Counter(key.split("\x1f", 1)[0] for key in builder.state.store)
    return builder, families


def open_calls(count: int, queues: int, now_us: int) -> list[Event]:
    """Calls offered within the last three hours that nobody answered yet."""
    rng = random.Random(7)
    offered = sorted(
        now_us - rng.randrange(1, OPEN_CALLS_WITHIN_S * US_PER_S) for _ in range(count)
    )
    return [
        {
            "event_id": f"open-{number}",
            "type": "call.offered",
            "ts": rfc3339(ts_us),
            "queue": queue_name(rng.randrange(queues)),
            "call_id": f"open-c{number}",
            "caller": f"+44207946{rng.randrange(10000):04d}",
        }
        for number, ts_us in enumerate(offered)
    ]
