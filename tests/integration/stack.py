"""Start callpulse's worker and API as real processes against a broker, and talk to them."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from callpulse.broker import EMBEDDED_BROKER_ENV, free_port
from callpulse.process import spawn, stop_process
from stream.records import TOTALS, routing_key, split_key

STARTUP_TIMEOUT_S = 60.0
# aiokafka logs each assignment, which Faust's log formatter draws as a table, one row a topic:
#   Setting newly assigned partitions
#   | topic | partitions | ... | cp-x-routed-events | {0, 2-3} | ... for group cp-x
ASSIGNMENT_LOG = re.compile(r"Setting newly assigned partitions(.*?) for group (\S+)", re.DOTALL)


# A local variable's line in mode's task dump (``    name = value``): left out of reports.
_LOCAL_VARIABLE = re.compile(r"^ {4}\w+ = ")


@dataclass
class Stack:
    bootstrap: str
    env: dict[str, str]
    port: int
    log_dir: Path
    processes: dict[str, Any] = field(default_factory=dict)
    # One client for every request: httpx.get builds a client (and its TLS context) per call,
    # about 0.25 s each, which dominated tests that read many figures.
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def events_topic(self) -> str:
        return self.env["CALLPULSE_EVENTS_TOPIC"]

    @property
    def dlq_topic(self) -> str:
        return self.env["CALLPULSE_DLQ_TOPIC"]

    def start_process(self, name: str, *args: str) -> None:
        """``callpulse ARGS``; a worker's Faust data directory is beside its log, not in cwd."""
        argv = [sys.executable, "-m", "callpulse", *args]
        env = self.env | {"F_DATADIR": str(self.log_dir / f"{name}-data")}
        self.processes[name] = spawn(argv, env=env, log_path=self.log_dir / f"{name}.log")

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            stop_process(process, timeout_s=15.0)
        self.http.close()

    def kill(self, name: str) -> int:
        """SIGKILL, as a crash would: no shutdown, no final commit or flush. Returns its pid."""
        process = self.processes.pop(name)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        return int(process.pid)

    def start_worker(self, name: str) -> None:
        """One more ``callpulse worker`` in the same group (the same app id), with a Faust data
        directory of its own, as on a machine of its own (a rocksdb:// store cannot share one)."""
        self.start_process(name, "worker")

    def assigned_partitions(self, name: str, topic: str, group: str) -> set[int]:
        """The partitions of ``topic`` that worker ``name`` was last assigned in ``group``, as
        its own log reports them (the embedded broker does not describe assignments)."""
        assignments = [
            table
            for table, for_group in ASSIGNMENT_LOG.findall(self.log(name))
            if for_group == group
        ]
        if not assignments:
            return set()
        row = re.search(rf"\|\s*{re.escape(topic)}\s*\|\s*\{{([^}}]*)\}}", assignments[-1])
        return _partition_numbers(row.group(1)) if row else set()

    def group_members(self, group: str) -> list[str]:
        """Member ids of a consumer group, as the broker's group coordinator describes them."""
        return asyncio.run(_group_members(self.bootstrap, group))

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Each partition of ``topic``: the offset its next record will get."""
        return asyncio.run(_end_offsets(self.bootstrap, topic))

    def committed_offsets(
        self, group: str, topic: str, partitions: Iterable[int]
    ) -> dict[int, int]:
        """What ``group`` committed on each of ``partitions`` of ``topic`` (-1: nothing)."""
        return asyncio.run(_committed_offsets(self.bootstrap, group, topic, partitions))

    def read_all(self, topic: str) -> list[Any]:
        """Every record of ``topic`` from the start, until a second passes with none."""
        return asyncio.run(_read_all(self.bootstrap, topic))

    def record_keys(self, topic: str, timeout_s: float = 30.0) -> dict[int, list[Any]]:
        """Each partition of ``topic``: the JSON keys of its records, in order, up to the end
        offsets the broker reports (see callpulse.broker.EXACT_END_OFFSETS_ENV)."""
        return asyncio.run(_record_keys(self.bootstrap, topic, timeout_s))

    def rss_kib(self, name: str) -> int:
        """Resident memory of one of the processes (``VmRSS`` of /proc/PID/status), in KiB."""
        status = Path(f"/proc/{self.processes[name].pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1])

    def counted_events(self) -> float:
        """Valid events counted once: processed minus duplicates. A replay after a crash adds
        to both, so this reaches the number of distinct events exactly when all are in."""
        text = self.metrics_text()  # one scrape for both: a scrape is not free on a big view
        processed = self.metric_sum("callpulse_events_processed_total", text)
        return processed - self.metric_sum("callpulse_events_duplicate_total", text)

    def wait_counted(self, count: int, timeout_s: float = 90.0, poll_s: float = 0.2) -> None:
        seen = 0.0

        def counted() -> bool:
            nonlocal seen
            seen = self.counted_events()
            return seen >= count

        try:
            self.wait_until(counted, timeout_s, f"{count} distinct events counted", poll_s=poll_s)
        except AssertionError as exc:
            raise AssertionError(f"{seen:.0f} counted; {exc}") from None

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def get(self, path: str, **params: Any) -> Any:
        reply = self.http.get(self.url + path, params=params)
        reply.raise_for_status()
        return reply.json()

    def get_at_second(self, path: str, **params: Any) -> tuple[Any, int]:
        """A KPI answer and the instant its live figures are at: the API answers as of the
        whole clock second (api/answers.py), so a request that starts and ends within one
        second was answered as of that second's start (µs). Retried until one does."""
        for _ in range(10):
            before = time.time()
            answer = self.get(path, **params)
            if int(time.time()) == int(before):
                return answer, int(before) * 1_000_000
        raise AssertionError(f"{path}: no answer within one clock second in 10 tries")

    def metrics_text(self) -> str:
        return self.http.get(self.url + "/metrics").text

    def metric_sum(self, name: str, text: str | None = None) -> float:
        """Sum of every sample of one metric family in /metrics (or in ``text``, scraped)."""
        text = self.metrics_text() if text is None else text
        pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
        return sum(float(value) for value in pattern.findall(text))

    def wait_until(
        self, condition: Any, timeout_s: float = 60.0, what: str = "", poll_s: float = 0.2
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except httpx.HTTPStatusError:
                pass  # e.g. 404 until the first event of a queue arrives
            except httpx.TransportError:
                pass  # e.g. an API process still starting
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise AssertionError(f"{name} died:\n{self.log(name)[-3000:]}")
            time.sleep(poll_s)
        report = self._pipeline_report() + self._worker_dumps()
        raise AssertionError(f"timed out waiting for {what or condition}{report}")

    def _pipeline_report(self) -> str:
        """Where each stage stands: its group's members, each worker's last assignment in it
        (from its log), and the group's committed offsets against the topic's end offsets."""
        app_id = self.env.get("CALLPULSE_APP_ID", "")
        stages = (
            ("stage one", self.events_topic, f"{app_id}-validate"),
            ("stage two", f"{app_id}-routed-events", app_id),
        )
        workers = [name for name in self.processes if name.startswith("worker")]
        lines = []
        for stage, topic, group in stages:
            try:
                members = len(self.group_members(group))
                ends = self.end_offsets(topic)
                committed = self.committed_offsets(group, topic, ends)
            except Exception as exc:  # a report on a failure must not hide it
                lines.append(f"{stage} ({group}): not described: {exc!r}")
                continue
            owned = {name: sorted(self.assigned_partitions(name, topic, group)) for name in workers}
            lines.append(
                f"{stage} ({group}): {members} members; assigned {owned}; "
                f"committed {committed} of {ends}"
            )
        try:
            lines.extend(asyncio.run(_routing_report(self.bootstrap, app_id)))
        except Exception as exc:
            lines.append(f"routing keys: not read: {exc!r}")
        return "\n--- pipeline:\n" + "\n".join(lines)

    def _worker_dumps(self) -> str:
        """What each live worker was doing: where its consumers stand (SIGUSR2), its threads and
        asyncio tasks (mode's worker on SIGUSR1). A loop blocked for good writes nothing."""
        logged = {
            name: len(self.log(name))
            for name, process in self.processes.items()
            if name.startswith("worker") and process.poll() is None
        }
        for name in logged:
            os.kill(self.processes[name].pid, signal.SIGUSR2)  # consumers (stream.diagnose)
            os.kill(self.processes[name].pid, signal.SIGUSR1)
        if logged:
            time.sleep(3.0)
        dumps = []
        for name, start in logged.items():
            lines = self.log(name)[start:].splitlines()
            stacks = [line for line in lines if not _LOCAL_VARIABLE.match(line)]
            dumps.append(f"\n--- {name} on SIGUSR1:\n" + "\n".join(stacks)[-60_000:])
        return "".join(dumps)

    def wait_processed(self, count: int, timeout_s: float = 90.0) -> None:
        """Until the workers have processed ``count`` valid events (duplicates included)."""
        self.wait_until(
            lambda: self.metric_sum("callpulse_events_processed_total") >= count,
            timeout_s,
            f"{count} events processed",
        )

    def produce(
        self,
        values: Sequence[bytes],
        keys: Sequence[bytes | None] | None = None,
        topic: str | None = None,
    ) -> None:
        asyncio.run(_produce(self.bootstrap, topic or self.events_topic, values, keys))

    def consume(self, topic: str, expected: int, timeout_s: float = 30.0) -> list[Any]:
        return asyncio.run(_consume(self.bootstrap, topic, expected, timeout_s))


def start_stack(
    bootstrap: str,
    tmp_path: Path,
    name: str,
    *,
    api: bool = True,
    worker: bool = True,
    partitions: int = 4,
) -> Stack:
    suffix = re.sub(r"[^a-zA-Z0-9]+", "-", name)[-40:].strip("-") + f"-{os.getpid()}"
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "CALLPULSE_KAFKA_BOOTSTRAP": bootstrap,
            "CALLPULSE_KAFKA_ACKS": "1",
            "CALLPULSE_KAFKA_SESSION_TIMEOUT_S": "4.0",
            "CALLPULSE_KAFKA_HEARTBEAT_INTERVAL_S": "1.0",
            "CALLPULSE_PARTITIONS": str(partitions),
            "CALLPULSE_APP_ID": f"cp-{suffix}",
            "CALLPULSE_EVENTS_TOPIC": f"events-{suffix}",
            "CALLPULSE_DLQ_TOPIC": f"dlq-{suffix}",
            "CALLPULSE_LOG_LEVEL": "info",
            # Open API and the public pseudonym key, as in `callpulse dev`; the security tests
            # set tokens and a key themselves (tests/integration/test_security.py).
            "CALLPULSE_INSECURE": "true",
        }
        | EMBEDDED_BROKER_ENV  # every worker, as in `callpulse dev`
    )
    stack = Stack(bootstrap, env, port, tmp_path)
    if worker:
        stack.start_process("worker", "worker")
    if api:
        stack.start_process("api", "api", "--port", str(port))
        stack.wait_until(lambda: _ready(stack.url), STARTUP_TIMEOUT_S, "API ready")
    return stack


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def _produce(
    bootstrap: str, topic: str, values: Sequence[bytes], keys: Sequence[bytes | None] | None
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    await producer.start()
    try:
        pending = [
            await producer.send(topic, value, key=keys[i] if keys else None)
            for i, value in enumerate(values)
        ]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, expected: int, timeout_s: float) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        metadata_max_age_ms=1000,
    )
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(found) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                found.extend(orjson.loads(m.value) for m in messages)
    finally:
        await consumer.stop()
    return found


async def _read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic`` from the start, until a second passes with none."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[Any] = []
    try:
        while batches := await consumer.getmany(timeout_ms=1000):
            for records in batches.values():
                found.extend(records)
    finally:
        await consumer.stop()
    return found


async def _routing_report(bootstrap: str, app_id: str) -> list[str]:
    """Per routing key whose figures fall short: the distinct events stage one forwarded to
    the routed topic against the events the changelog's totals count (processed less
    duplicates), so a shortfall shows which stage lost what."""
    forwarded: dict[str, set[str]] = {}
    for record in await _read_all(bootstrap, f"{app_id}-routed-events"):
        for event in orjson.loads(record.value):
            forwarded.setdefault(routing_key(event), set()).add(event["event_id"])
    counted: dict[str, int] = {}
    where: dict[str, str] = {}
    for record in await _read_all(bootstrap, f"{app_id}-state-changelog"):
        parts = split_key(orjson.loads(record.key))
        if parts[0] == TOTALS:
            value = orjson.loads(record.value) if record.value else None
            total = sum(value["events"].values()) - value["duplicates"] if value else 0
            counted[parts[1]] = total
            where[parts[1]] = f"p{record.partition}@{record.offset}"
    short = [
        f"  {routing}: forwarded {len(ids)}, counted {counted.get(routing, 0)} "
        f"(totals {where.get(routing, 'none')})"
        for routing, ids in sorted(forwarded.items())
        if counted.get(routing, 0) != len(ids)
    ]
    total = sum(len(ids) for ids in forwarded.values())
    return [f"routing keys: {total} distinct events forwarded; short or over:", *short]


def _partition_numbers(text: str) -> set[int]:
    """Faust's form of a partition set, "0, 2-3", as numbers."""
    numbers: set[int] = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        first, _, last = item.partition("-")
        numbers.update(range(int(first), int(last or first) + 1))
    return numbers


async def _group_members(bootstrap: str, group: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    return [
        str(member[0])  # (member_id, client_id, client_host, metadata, assignment)
        for response in responses
        for described in response.groups  # (error, group, state, protocol type, protocol, members)
        for member in described[5]
    ]


async def _committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: Iterable[int]
) -> dict[int, int]:
    """The group's committed offsets (-1: none) for ``partitions`` of ``topic`` (the embedded
    broker drops the connection when asked for all of a group's offsets)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        wanted = [TopicPartition(topic, partition) for partition in partitions]
        offsets = await admin.list_consumer_group_offsets(group, partitions=wanted)
    finally:
        await admin.close()
    return {tp.partition: int(meta.offset) for tp, meta in offsets.items()}


async def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()  # metadata, so partitions_for_topic knows the topic
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: int(offset) for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def _record_keys(bootstrap: str, topic: str, timeout_s: float) -> dict[int, list[Any]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        keys: dict[int, list[Any]] = {tp.partition: [] for tp in partitions}
        deadline = time.monotonic() + timeout_s
        while not await _reached(consumer, ends):
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic} not read to its end offsets {ends}")
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                keys[tp.partition].extend(orjson.loads(r.key) for r in records if r.key)
        return keys
    finally:
        await consumer.stop()


async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True
