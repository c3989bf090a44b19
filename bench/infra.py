"""Real processes for the benchmark: the embedded broker, callpulse's worker and API, the baseline.

``Processes`` is a context manager that stops everything it started, in reverse order, whatever
happens in between; every child also dies with the bench (``callpulse.process.spawn``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from subprocess import Popen
from types import TracebackType

import httpx

from callpulse.broker import SHORT_FETCH_ENV, EmbeddedBroker, free_port, start_embedded_broker
from callpulse.process import spawn, stop_process
from callpulse.tokens import READ, entry_for, new_token

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


class Processes:
    """The broker and every process of one scenario; ``with`` stops them all."""

    def __init__(self, log_dir: Path, name: str) -> None:
        self.log_dir = log_dir / name
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.broker: EmbeddedBroker | None = None
        self.running: dict[str, Popen[bytes]] = {}

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop_all()

    def start_broker(self) -> str:
        self.broker = start_embedded_broker(log_path=self.log_dir / "broker.log")
        return self.broker.bootstrap

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> Popen[bytes]:
        log = self.log_dir / f"{name}.log"
        log.unlink(missing_ok=True)  # spawn appends: an old run's lines would read as this one's
        # A worker's Faust data directory beside its log, not in the working directory.
        env = {"F_DATADIR": str(self.log_dir / f"{name}-data"), **env}
        process = spawn(argv, env=env, log_path=log)
        self.running[name] = process
        return process

    def start_callpulse(self, name: str, env: Mapping[str, str], *args: str) -> Popen[bytes]:
        return self.start(name, [sys.executable, "-m", "callpulse", *args], env)

    def stop(self, name: str) -> None:
        process = self.running.pop(name, None)
        if process is not None:
            stop_process(process, timeout_s=15.0)

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            self.stop(name)
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def check_alive(self) -> None:
        for name, process in self.running.items():
            if process.poll() is not None:
                log = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{log}")


# The token every bench client sends; its hash is what the API is configured with, as in
# production (the API's per-request token check is part of what scenario 3 measures).
READ_TOKEN = new_token()
AUTH_HEADERS = {"Authorization": f"Bearer {READ_TOKEN}"}


def callpulse_env(bootstrap: str, name: str, partitions: int = 8) -> dict[str, str]:
    """A worker's and an API's environment on their own topics, configured as for production
    (a real pseudonym key, a read token) except for the embedded broker's acks."""
    suffix = f"{name}-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ)
    env.update(
        {
            "CALLPULSE_KAFKA_BOOTSTRAP": bootstrap,
            "CALLPULSE_KAFKA_ACKS": "1",  # the embedded broker needs it (README, Architecture)
            "CALLPULSE_KAFKA_SESSION_TIMEOUT_S": "4.0",
            "CALLPULSE_KAFKA_HEARTBEAT_INTERVAL_S": "1.0",
            **SHORT_FETCH_ENV,  # the embedded broker holds fetches for their whole max wait
            "CALLPULSE_PARTITIONS": str(partitions),
            "CALLPULSE_APP_ID": f"cp-{suffix}",
            "CALLPULSE_EVENTS_TOPIC": f"events-{suffix}",
            "CALLPULSE_DLQ_TOPIC": f"dlq-{suffix}",
            # The default. Below it (warn, error) Faust's startup spinner leaves the root logger
            # at DEBUG, which costs the worker about a tenth of its CPU (docs/PERFORMANCE.md).
            "CALLPULSE_LOG_LEVEL": "info",
            # The default since session 7; explicit, as every figure since session 6 had it.
            "CALLPULSE_WORKER_GC_FREEZE": "true",
            "CALLPULSE_PSEUDONYM_KEY": secrets.token_urlsafe(32),
            "CALLPULSE_TOKENS": entry_for(READ_TOKEN, [READ]).line,
        }
    )
    return env


def changelog_topic(env: Mapping[str, str]) -> str:
    return f"{env['CALLPULSE_APP_ID']}-state-changelog"


def start_worker(processes: Processes, env: Mapping[str, str], name: str = "worker") -> None:
    """A ``callpulse worker``, once it has created its state changelog topic.

    An API started earlier subscribes to that topic first, and a broker that creates topics on
    demand (the embedded one, Kafka with auto.create.topics.enable) then makes it with its
    default partition count, which the worker refuses (PartitionsMismatch).
    """
    from bench.kafkaio import topic_exists

    processes.start_callpulse(name, env, "worker")
    bootstrap, topic = env["CALLPULSE_KAFKA_BOOTSTRAP"], changelog_topic(env)
    wait_until(
        lambda: asyncio.run(topic_exists(bootstrap, topic)),
        120.0,
        f"{name} to create {topic}",
        processes.check_alive,
        every_s=0.5,
    )


def start_api(processes: Processes, env: Mapping[str, str], timeout_s: float = 120.0) -> str:
    """A ``callpulse api`` process; returns its URL once ``/readyz`` says the view is recovered."""
    port = free_port()
    processes.start_callpulse("api", env, "api", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _ready(url), timeout_s, "API ready", processes.check_alive)
    return url


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    check: Callable[[], None] | None = None,
    every_s: float = 0.2,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


def rss_mb(pid: int) -> float:
    """Resident set size of one process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/statm").read_text().split()
    return int(fields[1]) * _PAGE_BYTES / 1e6


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds a process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
