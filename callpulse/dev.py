"""``callpulse dev``: broker, worker, API and simulator in one terminal, stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from api.alerts.watch import AlertWatch
from callpulse.broker import (
    EMBEDDED_BROKER_ENV,
    EmbeddedBroker,
    free_port,
    port_open,
    start_embedded_broker,
)
from callpulse.process import spawn, stop_process
from callpulse.pseudonym import DEV_KEY
from callpulse.settings import Settings

READY_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class DevOptions:
    port: int = 8000
    simulator: bool = True
    broker_port: int | None = None
    speed: float = 1.0
    backfill_s: float = 900.0
    log_dir: Path = Path(".callpulse-dev")
    understaff: str | None = None  # simulate --understaff: make a queue's alerts fire


def dev_environment(bootstrap: str, port: int) -> dict[str, str]:
    """Settings for a single laptop: the embedded broker and quick consumer-group joins."""
    env = dict(os.environ)
    env.update(
        {
            "CALLPULSE_KAFKA_BOOTSTRAP": bootstrap,
            "CALLPULSE_KAFKA_ACKS": "1",
            "CALLPULSE_KAFKA_SESSION_TIMEOUT_S": "4.0",
            "CALLPULSE_KAFKA_HEARTBEAT_INTERVAL_S": "1.0",
            "CALLPULSE_PARTITIONS": env.get("CALLPULSE_PARTITIONS", "4"),
            "CALLPULSE_API_PORT": str(port),
            # A laptop tool: `callpulse api` may run without tokens (the start banner says so),
            # and callers are hashed with the public development key unless one is set.
            "CALLPULSE_INSECURE": "true",
            "CALLPULSE_PSEUDONYM_KEY": env.get("CALLPULSE_PSEUDONYM_KEY") or DEV_KEY,
        }
        | EMBEDDED_BROKER_ENV
    )
    return env


def _simulated_customer_base(options: DevOptions, env: dict[str, str]) -> None:
    """Without a queue file of the user's, tell the service how many customers the simulated
    centre starts with, so its retention rate has a base (docs/SEMANTICS.md "Retention")."""
    if not options.simulator or env.get("CALLPULSE_QUEUES_CONFIG"):
        return
    if Settings().queues_config is not None:  # set in a .env file
        return
    from callpulse.simulator.profiles import default_centre

    path = options.log_dir / "queues.yaml"
    path.write_text(f"customers: {{base: {default_centre().caller_population}}}\n", "utf-8")
    env["CALLPULSE_QUEUES_CONFIG"] = str(path.resolve())


def run_dev(options: DevOptions) -> int:
    if port_open(options.port):
        print(
            f"callpulse dev: port {options.port} is in use; pick another with --port",
            file=sys.stderr,
        )
        return 2
    options.log_dir.mkdir(parents=True, exist_ok=True)
    stopping = False

    def request_stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    broker = start_embedded_broker(
        options.broker_port or free_port(), log_path=options.log_dir / "broker.log"
    )
    env = dev_environment(broker.bootstrap, options.port)
    _simulated_customer_base(options, env)
    me = [sys.executable, "-m", "callpulse"]
    children = {
        "worker": spawn(
            [*me, "worker"],
            # Faust's tables beside the logs, not in the working directory.
            env=env | {"F_DATADIR": str(options.log_dir / "worker-data")},
            log_path=options.log_dir / "worker.log",
        ),
        "api": spawn(
            [*me, "api", "--port", str(options.port)], env=env, log_path=options.log_dir / "api.log"
        ),
    }
    if options.simulator:
        children["simulator"] = spawn(
            [
                *me,
                "simulate",
                "--speed",
                str(options.speed),
                "--backfill-s",
                str(options.backfill_s),
                *(["--understaff", options.understaff] if options.understaff else []),
            ],
            env=env,
            log_path=options.log_dir / "simulator.log",
        )
    try:
        _announce(options, broker)
        return _supervise(children, options, lambda: stopping)
    finally:
        for name in ("simulator", "api", "worker"):
            if name in children:
                stop_process(children[name], timeout_s=10.0)
        broker.stop()
        print("callpulse dev: stopped", flush=True)


def _announce(options: DevOptions, broker: EmbeddedBroker) -> None:
    base = f"http://127.0.0.1:{options.port}"
    print(
        f"""callpulse dev: starting (logs in {options.log_dir}/)
  broker      {broker.bootstrap} (embedded, in memory)
  KPIs        {base}/v1/kpis?window=15m
  API docs    {base}/docs
  metrics     {base}/metrics
  ingest      POST {base}/v1/events
  alerts      {base}/v1/alerts (and printed here as they fire and resolve)
  {_access_note()}
  Ctrl-C stops everything.""",
        flush=True,
    )


def _access_note() -> str:
    settings = Settings()
    if settings.tokens or settings.tokens_file:
        return "The API asks for the tokens of CALLPULSE_TOKENS; callers use the public dev key."
    return "This is a local development setup: the API is open to anyone who can reach it."


def _supervise(
    children: dict[str, subprocess.Popen[bytes]], options: DevOptions, stopping: Callable[[], bool]
) -> int:
    started = time.monotonic()
    announced_ready = False
    alerts = AlertWatch(f"http://127.0.0.1:{options.port}")
    while not stopping():
        for name, child in children.items():
            code = child.poll()
            if code is not None and not (name == "simulator" and code == 0):
                print(
                    f"callpulse dev: the {name} exited with {code}; see "
                    f"{options.log_dir}/{name}.log",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
        if not announced_ready and _ready(options.port):
            announced_ready = True
            print(f"callpulse dev: ready after {time.monotonic() - started:.1f} s", flush=True)
        for line in alerts.poll() if announced_ready else ():
            print(f"callpulse dev: alert {line}", flush=True)
        time.sleep(0.5)
    return 0


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False
