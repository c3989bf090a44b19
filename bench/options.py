"""What one ``python -m bench`` invocation measures, and how big."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_OUT = Path(".bench")
SCENARIOS = ("throughput", "latency", "api", "memory", "replay", "profile")


@dataclass(frozen=True, slots=True)
class Options:
    out_dir: Path = DEFAULT_OUT
    scenarios: tuple[str, ...] = SCENARIOS
    partitions: int = 8
    queues: int = 200
    # 1. throughput: events pre-filled per mode; the baseline runs on the same topic, time-boxed
    single_events: int = 20_000
    batched_events: int = 100_000
    per_message: int = 500
    baseline_s: float = 20.0
    # 2. latency
    latency_rate: float = 5000.0
    latency_low_rate: float = 100.0  # well below what the worker sustains: its own delay
    latency_s: float = 20.0
    probes_per_s: float = 10.0
    # 3. API
    api_clients: int = 200
    api_s: float = 10.0
    sse_subscribers: int = 1000
    sse_s: float = 15.0
    # 4. memory
    memory_queues: int = 200
    memory_hours: float = 24.0
    calls_per_queue_minute: float = 0.5
    open_calls: int = 50_000
    # 5. replay: measured on this many events (24 h of traffic), extrapolated to replay_target
    replay_events: int = 100_000
    replay_target: int = 10_000_000
    replay_workers: int = 1  # worker processes in one group (scale-out; they share the box)
    # profiles: events drained per mode under py-spy
    profile_single_events: int = 10_000
    profile_batched_events: int = 50_000

    def full(self) -> Options:
        """The issue's sizes: much longer (replay of ten million events for real)."""
        return replace(
            self,
            single_events=200_000,
            batched_events=1_000_000,
            baseline_s=60.0,
            latency_s=60.0,
            api_s=30.0,
            sse_s=60.0,
            replay_events=self.replay_target,
            calls_per_queue_minute=1.0,
        )
