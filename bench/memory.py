"""Scenario 4: resident memory with 200 queues, 24 h of buckets and 50,000 calls waiting.

The state is built in-process (``bench.state``: the worker's own validation and processor, then
its retention expiry) and written as the state changelog. Then real processes load it: a
``callpulse worker`` recovers its table from that changelog and a ``callpulse api`` replays it
into its read model; their RSS is the figure. Idle processes of each kind, on an empty app,
give the fixed cost the state adds to. A second worker with the production store
(``rocksdb://``, when the ``rocksdb`` extra is installed) recovers the same changelog.

Building the state takes minutes: it is kept in ``$TMPDIR/callpulse-bench-cache`` (outside the
work tree) and reused for an hour by runs with the same sizes and the same code (``stream/``,
the state builder, the traffic).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import pickle
import random
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.events import Event, Traffic, event_chunks, queue_name, rfc3339
from bench.infra import Processes, callpulse_env, changelog_topic, rss_mb, start_api, wait_until
from bench.options import Options
from bench.report import Result
from bench.state import StateBuilder, publish
from stream import records as record_names
from stream.kpi.timeutil import US_PER_S

TARGET_MB = 300.0
EVENTS_PER_CALL = 6.4
OPEN_CALLS_WITHIN_S = 3 * 3600  # waiting calls older than 4 h are dropped by the worker
SETTLE_S = 3.0
CACHE_MAX_AGE_S = 3600.0  # older, the open calls start to pass the worker's longest wait
BUILD_KEY = "bench-memory-pseudonym-key-0123456789abcdef"  # fixed: the cached state reusable
# Outside the work tree: a cached state is about 90 MB.
CACHE_DIR = Path(tempfile.gettempdir()) / "callpulse-bench-cache"


def memory(options: Options) -> list[Result]:
    with Processes(options.out_dir / "logs", "memory") as processes:
        bootstrap = processes.start_broker()
        idle_worker, idle_api = _idle_rss(processes, bootstrap, options)
        env = callpulse_env(bootstrap, "memory", options.partitions)
        state = _state(options)
        records = publish(bootstrap, changelog_topic(env), options.partitions, state.store)
        worker_mb = _recovered_worker_rss(processes, env, "worker")
        processes.stop("worker")
        start_api(processes, env, timeout_s=600)
        time.sleep(SETTLE_S)
        api_mb = rss_mb(processes.running["api"].pid)
        processes.stop("api")
        rocksdb_mb = _rocksdb_worker_rss(processes, env, options.out_dir)
    shape = (
        f"{options.memory_queues} queues x {options.memory_hours:g} h, "
        f"{options.open_calls:,} open calls"
    )
    built = "reused from the cache" if state.cached else f"built in {state.built_s:.0f} s"
    detail = (
        f"{state.events:,} events ({built}) into {records:,} records, "
        f"{state.total_bytes() / 1e6:.0f} MB of changelog JSON; by family, records and MB: "
        + ", ".join(
            f"{family} {count:,} {state.bytes[family] / 1e6:.1f}"
            for family, count in state.families.most_common()
        )
    )
    results = [
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
    if rocksdb_mb is not None:
        results.append(
            Result(
                f"4. worker RSS, rocksdb:// store, {shape}",
                rocksdb_mb,
                "MB",
                target=TARGET_MB,
                higher_is_better=False,
                note="the production store: the table on disk, not in Python objects",
            )
        )
    return results


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


def _rocksdb_worker_rss(
    processes: Processes, env: Mapping[str, str], out_dir: Path
) -> float | None:
    """The same recovery with ``rocksdb://`` (None without the ``rocksdb`` extra)."""
    if importlib.util.find_spec("rocksdict") is None:
        return None
    data_dir = out_dir / "rocksdb" / uuid.uuid4().hex[:8]
    data_dir.mkdir(parents=True)
    rocksdb_env = {**env, "CALLPULSE_STORE": "rocksdb://", "APP_DATADIR": str(data_dir)}
    try:
        rss = _recovered_worker_rss(processes, rocksdb_env, "rocksdb-worker")
        processes.stop("rocksdb-worker")
        return rss
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@dataclass
class BuiltStore:
    store: dict[str, Any]
    events: int
    built_s: float
    cached: bool = False

    def __post_init__(self) -> None:
        self.families: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        for record_key, value in self.store.items():
            family = record_key.split(record_names.SEP, 1)[0]
            self.families[family] += 1
            self.bytes[family] += len(orjson.dumps(record_key)) + len(orjson.dumps(value))

    def total_bytes(self) -> int:
        return sum(self.bytes.values())


def _state(options: Options) -> BuiltStore:
    """The built state, from the cache when the same sizes and code built it within the hour."""
    path = CACHE_DIR / f"memory-{_cache_key(options)}.pickle"
    if path.exists() and time.time() - path.stat().st_mtime < CACHE_MAX_AGE_S:
        store, events = pickle.loads(path.read_bytes())  # our own file, written below
        return BuiltStore(store, events, 0.0, cached=True)
    started = time.monotonic()
    builder = _build(options, BUILD_KEY)
    state = BuiltStore(dict(builder.state.store), builder.state.events, time.monotonic() - started)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps((state.store, state.events), protocol=pickle.HIGHEST_PROTOCOL))
    return state


def _cache_key(options: Options) -> str:
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(
        repr(
            (
                options.partitions,
                options.memory_queues,
                options.memory_hours,
                options.calls_per_queue_minute,
                options.open_calls,
            )
        ).encode()
    )
    sources = sorted((root / "stream").rglob("*.py")) + [
        root / "bench" / name for name in ("state.py", "events.py")
    ]
    for source in sources:
        digest.update(source.read_bytes())
    for builds in (_build, open_calls):  # this module's part in the state, not its reporting
        digest.update(inspect.getsource(builds).encode())
    return digest.hexdigest()[:16]


def _build(options: Options, pseudonym_key: str) -> StateBuilder:
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
    return builder


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
