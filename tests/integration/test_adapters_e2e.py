"""From each source's own format to KPIs on the API, through a real broker, worker and API.

The Asterisk log goes in through ``python -m callpulse ingest`` (a subprocess, as an operator
runs it) and its KPIs are compared with counts taken straight from the log's lines here, with
no adapter code. Running the command again changes nothing. Twilio callbacks and Amazon
Connect records are POSTed to the webhooks and show up in their queues' KPIs; callers reach
Kafka pseudonymised; a payload nobody can map is refused and counted.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from callpulse.process import stop_process
from tests.integration.stack import STARTUP_TIMEOUT_S, Stack, start_stack

pytestmark = pytest.mark.broker

ROOT = Path(__file__).parents[2]
DATA = ROOT / "tests" / "data"
THRESHOLD_S = 20  # the default service-level threshold
SHORT_ABANDON_S = 5
TRANSFERS = ("TRANSFER", "BLINDTRANSFER", "ATTENDEDTRANSFER")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
def stack(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the module (queues differ per test); the API knows the mappings."""
    running = start_stack(broker, tmp_path_factory.mktemp("adapters"), "adapters", api=False)
    try:
        running.env["CALLPULSE_ADAPTERS_CONFIG"] = str(DATA / "generic" / "adapters.yaml")
        running.start_process("api", "api", "--port", str(running.port))
        running.wait_until(lambda: _ready(running.url), STARTUP_TIMEOUT_S, "API ready")
        yield running
    finally:
        running.stop()


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def processed(stack: Stack) -> float:
    return stack.metric_sum("callpulse_events_processed_total")


# Asterisk -----------------------------------------------------------------------------------


def shifted_log(tmp_path: Path) -> Path:
    """The fixture log moved so that its last line was two minutes ago (bytes otherwise kept)."""
    lines = (DATA / "asterisk" / "asterisk-18.queue_log").read_text().splitlines()
    delta = int(time.time()) - 120 - int(lines[-1].split("|")[0])
    path = tmp_path / "queue_log"
    path.write_text("".join(f"{int(ln[:10]) + delta}{ln[10:]}\n" for ln in lines))
    return path


def expected_from_log(path: Path) -> dict[str, dict[str, Any]]:
    """Per queue, the figures counted straight from the log's fields (no adapter involved)."""
    calls: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"offered": set(), "answered": {}, "abandoned": {}, "exited": set(), "talk": []}
    )
    transferred: dict[str, int] = defaultdict(int)
    for line in path.read_text().splitlines():
        _, callid, queue, _, event, *data = line.split("|")
        q = calls[queue]
        if event == "ENTERQUEUE":
            q["offered"].add(callid)  # a caller entering the same queue again is one call
        elif event == "CONNECT":
            q["answered"].setdefault(callid, int(data[0]))
        elif event == "ABANDON":
            q["abandoned"].setdefault(callid, int(data[2]))
        elif event.startswith("EXIT"):
            q["exited"].add(callid)
        elif event in ("COMPLETECALLER", "COMPLETEAGENT"):
            q["talk"].append(int(data[1]))
        elif event in TRANSFERS:
            transferred[queue] += 1
            q["talk"].append(int(data[-2]))  # calltime: second from the end in every variant
    expected = {}
    for queue in ("sales", "support"):
        q = calls[queue]
        answered, abandoned = list(q["answered"].values()), list(q["abandoned"].values())
        short = sum(1 for w in abandoned if w < SHORT_ABANDON_S)
        in_threshold = sum(1 for w in answered if w <= THRESHOLD_S)
        expected[queue] = {
            "offered": len(q["offered"]),
            "answered": len(answered),
            "abandoned": len(abandoned),
            "exited": len(q["exited"]),
            "transferred": transferred[queue],
            "answered_in_threshold": in_threshold,
            "service_level": in_threshold / (len(answered) + len(abandoned) - short),
            "asa_s": statistics.fmean(answered),
            "avg_abandon_s": statistics.fmean(abandoned),
            "max_wait_s": max(answered + abandoned),
            "avg_talk_s": statistics.fmean(q["talk"]),
            "aht_s": statistics.fmean(q["talk"]),  # Asterisk logs no hold and no wrap-up
            "calls_waiting": 0,
        }
    return expected


def ingest_cli(stack: Stack, *args: str) -> dict[str, Any]:
    done = subprocess.run(  # our own CLI, with our arguments
        [sys.executable, "-m", "callpulse", "ingest", *args],
        env=stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def kpis(stack: Stack, queue: str, **params: str) -> dict[str, Any]:
    figures: dict[str, Any] = stack.get(f"/v1/queues/{queue}/kpis", window="1h", **params)
    return figures


def assert_figures(served: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    for name, value in expected.items():
        assert served[name] == pytest.approx(value, abs=1e-9), f"{where} {name}"


def test_asterisk_queue_log_gives_the_kpis_counted_from_the_log(
    stack: Stack, tmp_path: Path
) -> None:
    path = shifted_log(tmp_path)
    expected = expected_from_log(path)
    before = processed(stack)
    summary = ingest_cli(stack, "asterisk-queue-log", str(path))
    assert summary["refused"] == {} and summary["inputs"] == 133
    sent = summary["events"]
    stack.wait_processed(int(before + sent))
    stack.wait_until(
        lambda: kpis(stack, "support")["offered"] == expected["support"]["offered"], 30
    )
    # A fixed end for the window (after the last line): figures that age with the clock
    # (occupancy, predictions) read the same at both reads.
    at = datetime.now(UTC).isoformat()
    first = {queue: kpis(stack, queue, at=at) for queue in expected}
    for queue, figures in expected.items():
        assert_figures(first[queue], figures, queue)
    agents = {a["agent_id"]: a for a in stack.get("/v1/agents")["agents"]}
    assert agents["Dana Ruiz"]["state"] == "logged_out"  # REMOVEMEMBER, her last queue
    assert agents["Alice Martin"]["queues"] == ["sales", "support"]  # a member of both

    # The same file again: every event is a duplicate, no figure moves.
    duplicates = stack.metric_sum("callpulse_events_duplicate_total")
    again = ingest_cli(stack, "asterisk-queue-log", str(path))
    assert again == summary
    stack.wait_processed(int(before + 2 * sent))
    stack.wait_until(
        lambda: stack.metric_sum("callpulse_events_duplicate_total") >= duplicates + sent, 30
    )
    for queue in expected:
        assert kpis(stack, queue, at=at) == first[queue]


def call_lines(number: int, start_s: int) -> str:
    """One answered call in the ``hotline`` queue, as Asterisk 18 logs it."""
    uid = f"{start_s}.{900 + number}"
    return (
        f"{start_s}|{uid}|hotline|NONE|ENTERQUEUE||+4420794600{number:02d}|1\n"
        f"{start_s + 9}|{uid}|hotline|Hana Follow|CONNECT|9|{start_s + 9}.{950 + number}|2\n"
        f"{start_s + 70}|{uid}|hotline|Hana Follow|COMPLETECALLER|9|61|1\n"
    )


def test_following_a_live_log_through_rotations_and_a_restart(stack: Stack, tmp_path: Path) -> None:
    live, state = tmp_path / "queue_log", tmp_path / "follow-state.json"
    start_s = int(time.time()) - 600
    live.write_text(call_lines(1, start_s) + call_lines(2, start_s + 80))
    duplicates = stack.metric_sum("callpulse_events_duplicate_total")
    before = processed(stack)
    args = ("ingest", "asterisk-queue-log", str(live), "--follow", "--state-file", str(state))

    def offered_becomes(count: int) -> None:
        stack.wait_until(lambda: kpis(stack, "hotline")["offered"] == count, 60, f"{count}")

    stack.start_process("follower", *args, "--poll-s", "0.1")
    offered_becomes(2)
    # logrotate's default: rename, and Asterisk starts a new file.
    with live.open("a") as handle:
        handle.write(call_lines(3, start_s + 160))
    live.rename(tmp_path / "queue_log.1")
    live.write_text(call_lines(4, start_s + 240))
    offered_becomes(4)
    follower = stack.processes.pop("follower")
    stop_process(follower)  # SIGTERM: the batch in hand is finished and the position saved
    assert follower.returncode == 0, stack.log("follower")
    assert f"{live}: rotated, reading on" in stack.log("follower")

    # While it is down: more lines, then logrotate's copytruncate.
    with live.open("a") as handle:
        handle.write(call_lines(5, start_s + 320))
    (tmp_path / "queue_log.1").rename(tmp_path / "queue_log.2")
    shutil.copyfile(live, tmp_path / "queue_log.1")
    live.write_text("")
    with live.open("a") as handle:
        handle.write(call_lines(6, start_s + 400))
    stack.start_process("follower-again", *args, "--poll-s", "0.1")
    offered_becomes(6)
    assert_figures(kpis(stack, "hotline"), {"answered": 6, "asa_s": 9, "avg_talk_s": 61}, "")
    # Nothing was read twice: 6 calls of 5 events each, and no duplicate among them.
    stack.wait_processed(int(before + 6 * 5))
    assert stack.metric_sum("callpulse_events_duplicate_total") == duplicates
    stop_process(stack.processes.pop("follower-again"))


# Webhooks -----------------------------------------------------------------------------------


def recent_twilio_callbacks() -> list[dict[str, str]]:
    """The exported callbacks, moved so the last one was a minute ago."""
    callbacks = [
        json.loads(line)
        for line in (DATA / "twilio" / "taskrouter-callbacks.ndjson").read_text().splitlines()
    ]
    delta_ms = int(time.time() * 1000) - 60_000 - int(callbacks[-1]["TimestampMs"])
    for callback in callbacks:
        moved = int(callback["TimestampMs"]) + delta_ms
        callback.update(TimestampMs=str(moved), Timestamp=str(moved // 1000))
    return callbacks


def recent_contact_records() -> list[dict[str, Any]]:
    records = [
        json.loads(line)
        for line in (DATA / "amazon_connect" / "contact-records.ndjson").read_text().splitlines()
    ]
    delta = datetime.now(UTC) - datetime(2024, 3, 1, 9, 12, tzinfo=UTC)

    def move(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, str) and ISO.match(value):
            moved = datetime.fromisoformat(value.replace("Z", "+00:00")) + delta
            return moved.strftime("%Y-%m-%dT%H:%M:%SZ")
        return value

    return [move(record) for record in records]


# Counted from the fixtures by hand (tests/data/twilio, tests/data/amazon_connect):
WEBHOOK_EXPECTED = {
    # Twilio: tasks 1, 3, 4 enter Sales (4 times out of it); 2, 4, 5 enter Support (5 hits TTL)
    "Sales": {"offered": 3, "answered": 1, "abandoned": 1, "exited": 1, "asa_s": 14},
    "Support": {"offered": 3, "answered": 2, "abandoned": 0, "exited": 1, "avg_acw_s": 30},
    # Connect: contacts 1, 2, 6 queue in Billing; 4 and 5 in Technical Support
    "Billing": {"offered": 3, "answered": 1, "abandoned": 1, "exited": 1, "aht_s": 265},
    "Technical Support": {"offered": 2, "answered": 2, "transferred": 1, "avg_talk_s": 290},
}


def test_twilio_and_connect_webhooks_show_up_in_the_kpis(stack: Stack) -> None:
    before = processed(stack)
    sent = 0
    for callback in recent_twilio_callbacks():  # one form-encoded POST per event, as Twilio
        reply = httpx.post(f"{stack.url}/v1/webhooks/twilio", data=callback, timeout=10)
        assert reply.status_code == 202, reply.text
        sent += reply.json()["events"]
    records = recent_contact_records()
    delivery = {
        "requestId": "2b5f6a0c-62a1-4a47-9b0f-3c1e6f0a9d11",
        "timestamp": int(time.time() * 1000),
        "records": [{"data": base64.b64encode(json.dumps(r).encode()).decode()} for r in records],
    }
    reply = httpx.post(
        f"{stack.url}/v1/webhooks/amazon-connect",
        json=delivery,
        headers={"x-amz-firehose-request-id": delivery["requestId"]},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["requestId"] == delivery["requestId"]
    sent += reply.json()["events"]
    stack.wait_processed(int(before + sent))
    for queue, figures in WEBHOOK_EXPECTED.items():
        offered = figures["offered"]
        stack.wait_until(lambda q=queue, n=offered: kpis(stack, q)["offered"] == n, 30)  # type: ignore[misc]
        assert_figures(kpis(stack, queue), figures, queue)
    agents = {a["agent_id"]: a["state"] for a in stack.get("/v1/agents")["agents"]}
    assert (agents["Alice Martin"], agents["Bob Chen"]) == ("logged_out", "available")


def test_callers_reach_kafka_pseudonymised(stack: Stack) -> None:
    events = [e for m in stack.consume(stack.events_topic, expected=10_000, timeout_s=5) for e in m]
    callers = {e["caller"] for e in events if "caller" in e}
    assert callers, "the adapters send callers"
    assert all(c.startswith("ph1:") for c in callers), callers


def test_an_unmappable_payload_is_refused_and_counted(stack: Stack) -> None:
    refused_before = stack.metric_sum("callpulse_events_invalid_total")
    reply = httpx.post(
        f"{stack.url}/v1/webhooks/twilio", data={"Sid": "EV1", "TaskSid": "WT1"}, timeout=10
    )
    assert reply.status_code == 422
    assert reply.json()["refused"][0]["problems"] == [
        "field 'EventType' is required (a non-empty string)"
    ]
    # Counted where it was refused, and (through the dead-letter topic) with every refusal.
    assert 'adapter="twilio",outcome="refused"} 1.0' in httpx.get(f"{stack.url}/metrics").text
    stack.wait_until(
        lambda: stack.metric_sum("callpulse_events_invalid_total") >= refused_before + 1, 30
    )


def test_a_generic_webhook_through_its_mapping(stack: Stack) -> None:
    now_ms = int(time.time() * 1000)
    call = {"campaign": {"name": "renewals"}, "agent": {"login": "jdupont"}}
    waited = {"id": 7, "queued_ms": 12_000}
    batch = {
        "batch": [
            call | {"evt": "queued", "uuid": "g1", "at": now_ms - 30_000, "call": {"id": 7}},
            call | {"evt": "bridged", "uuid": "g2", "at": now_ms - 18_000, "call": waited},
            call | {"evt": "heartbeat", "uuid": "g3", "at": now_ms},
        ]
    }
    before = processed(stack)
    reply = httpx.post(f"{stack.url}/v1/webhooks/generic/acme-dialler", json=batch, timeout=10)
    assert reply.status_code == 202, reply.text
    stack.wait_processed(int(before + 2))
    stack.wait_until(lambda: kpis(stack, "renewals")["answered"] == 1, 30)
    assert kpis(stack, "renewals")["asa_s"] == 12
