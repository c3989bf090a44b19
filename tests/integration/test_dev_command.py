"""`callpulse dev` is the one command a new user runs: it must start, serve, and clean up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from callpulse.broker import free_port

pytestmark = pytest.mark.broker


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc), following the parent links."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_dev_starts_shows_simulated_kpis_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    dev = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "callpulse",
            "dev",
            "--port",
            str(port),
            "--backfill-s",
            "600",
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        queues: list[dict[str, object]] = []
        while time.monotonic() < deadline and dev.poll() is None:
            try:
                reply = httpx.get(f"http://127.0.0.1:{port}/v1/kpis", timeout=2)
                queues = reply.json()["queues"] if reply.status_code == 200 else []
            except httpx.HTTPError:
                queues = []
            if len(queues) >= 3 and all(int(str(q["offered"])) > 0 for q in queues):
                break
            time.sleep(0.5)
        assert dev.poll() is None, dev.stdout.read() if dev.stdout else ""
        assert len(queues) >= 3, "simulated queues with figures within a minute"
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "callpulse_calls_offered_total{queue=" in metrics
        children = _descendants(dev.pid)
        assert len(children) >= 4, "broker, worker, API and simulator run as children"
    finally:
        dev.send_signal(signal.SIGINT)
        output, _ = dev.communicate(timeout=60)
    assert dev.returncode == 0, output
    assert "http://127.0.0.1:" in output and "/docs" in output, "URLs printed"
    assert "open to anyone" in output, "says it is unauthenticated"
    time.sleep(0.5)
    assert not [pid for pid in children if _alive(pid)], "no process left behind"
