"""The benchmark harness's pure parts: percentiles, ratios, the table, py-spy stacks, traffic.

Not a timed test: nothing here measures speed. It keeps ``make bench`` from breaking quietly
between runs (the bench itself needs minutes and a quiet machine).
"""

from __future__ import annotations

import pytest

from bench.api_load import parse_wrk
from bench.events import Traffic, batched_messages, event_chunks, producer_key, single_messages
from bench.profiles import Bucket, inclusive_shares, package_of, parse_collapsed, self_shares
from bench.report import Result, format_table, percentile
from bench.sse import Subscriber
from stream.kpi.timeutil import US_PER_S, parse_ts_us
from stream.validation import EventValidator


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 99, 5.0),  # one value: every percentile is it
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),  # even count: halfway between the middle two
        ([4.0, 1.0, 3.0, 2.0], 0, 1.0),  # unsorted input; the minimum
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),  # the maximum
        ([float(i) for i in range(1, 101)], 99, 99.01),  # linear between ranks 99 and 100
    ],
)
def test_percentile_interpolates_between_closest_ranks(
    values: list[float], q: float, expected: float
) -> None:
    assert percentile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("values", "q"),
    [
        ([], 50),  # nothing to rank
        ([1.0], 101),  # past the top
        ([1.0], -1),  # below the bottom
    ],
)
def test_percentile_refuses_what_has_no_answer(values: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        percentile(values, q)


@pytest.mark.parametrize(
    ("result", "met", "vs_baseline", "vs_target"),
    [
        # events/s: higher is better; twice the baseline, a fifth of the target
        (Result("t", 10_000, "events/s", 50_000, True, 5_000), False, 2.0, 0.2),
        # ms: lower is better; half the baseline's latency is 2x better, target met
        (Result("l", 100, "ms", 250, False, 200), True, 2.0, 2.5),
        # exactly at the target counts as met
        (Result("m", 300, "MB", 300, False), True, None, 1.0),
        # nothing measured (the run failed): neither met nor missed
        (Result("x", None, "ms", 250, False, 100), None, None, None),
        # a zero baseline has no ratio
        (Result("z", 5, "events/s", None, True, 0), None, None, None),
    ],
)
def test_result_ratios_say_how_many_times_better(
    result: Result, met: bool | None, vs_baseline: float | None, vs_target: float | None
) -> None:
    assert result.met is met
    assert result.vs_baseline == (None if vs_baseline is None else pytest.approx(vs_baseline))
    assert result.vs_target == (None if vs_target is None else pytest.approx(vs_target))


def test_table_lines_up_every_row_and_lists_the_notes() -> None:
    results = [
        Result("1. throughput", 1234.4, "events/s", 50_000, True, 617.2, "naive", note="why"),
        Result("2. latency p99", None, "ms", 250, False),
    ]
    lines = format_table(results).splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert len({len(line) for line in table}) == 1  # every row padded to the same width
    assert "1,234 events/s" in table[2]
    assert ">= 50,000 events/s" in table[2]
    assert "2.00x" in table[2]  # vs the naive baseline
    assert "617 events/s (naive)" in table[2]
    assert "| NO " in table[2]
    assert "n/a" in table[3]
    assert lines[-1] == "- 1. throughput: why"


def test_wrk_output_gives_percentiles_in_ms_and_timeouts() -> None:
    output = """Running 10s test @ http://127.0.0.1:8000/v1/kpis
  Latency Distribution
     50%  812.00us
     75%    1.20ms
     90%    3.10ms
     99%    1.50s
  9120 requests in 10.00s, 1.10MB read
  Socket errors: connect 0, read 0, write 0, timeout 7
Requests/sec:    912.00
"""
    load = parse_wrk(output)
    assert load.p50_ms == pytest.approx(0.812)
    assert load.p99_ms == pytest.approx(1500.0)
    assert (load.completed, load.timeouts, load.per_s) == (9120, 7, 912.0)


def test_wrk_output_without_any_completed_request_has_no_percentiles() -> None:
    output = "  0 requests in 10.00s, 0.00B read\nRequests/sec:      0.00\n"
    load = parse_wrk(output)
    assert (load.p50_ms, load.p99_ms, load.completed) == (None, None, 0)


def test_sse_counts_event_marks_split_across_reads() -> None:
    sub = Subscriber()
    sub.feed(b"retry: 2000\n\nevent: kp", 1.0)
    sub.feed(b"is\ndata: {}\n\nevent: kpis\ndata: {}\n\n", 2.0)
    assert (sub.updates, sub.last_update) == (2, 2.0)


COLLAPSED = "\n".join(
    [
        "<module> (/w/stream/worker.py:1);process (/w/stream/processor.py:9);"
        "merge (/w/stream/kpi/accumulator.py:3) 6",
        "<module> (/w/stream/worker.py:1);"
        "send (/v/lib/python3.11/site-packages/faust/topics.py:5) 3",
        "_run_once (/usr/lib/python3.11/asyncio/base_events.py:1) 1",
        "garbage line without a count",
    ]
)


def test_collapsed_stacks_give_self_and_inclusive_shares() -> None:
    samples = parse_collapsed(COLLAPSED)
    assert [s.count for s in samples] == [6, 3, 1]
    assert self_shares(samples) == [("stream/kpi", 60.0), ("faust", 30.0), ("asyncio", 10.0)]
    buckets = [Bucket("processor", r"processor\.py:process$"), Bucket("worker", r"worker\.py")]
    assert inclusive_shares(samples, buckets) == [("processor", 60.0), ("worker", 90.0)]


@pytest.mark.parametrize(
    ("path", "package"),
    [
        ("/tmp/venv/lib/python3.11/site-packages/aiokafka/conn.py", "aiokafka"),  # third party
        ("/work/main/stream/kpi/histogram.py", "stream/kpi"),  # our nested package
        ("/work/main/api/views.py", "api"),  # our top-level package
        ("/usr/lib/python3.11/selectors.py", "selectors"),  # a stdlib module
        ("<string>", "<string>"),  # generated code
    ],
)
def test_frames_are_grouped_by_package(path: str, package: str) -> None:
    assert package_of(path) == package


def test_generated_traffic_is_exact_valid_and_sorted_within_chunks() -> None:
    start_us = 1_700_000_000 * US_PER_S
    spec = Traffic(3000, start_us, start_us + 600 * US_PER_S, queues=5, id_prefix="s-")
    chunks = list(event_chunks(spec))
    events = [event for chunk in chunks for event in chunk]
    assert len(events) == 3000
    assert len({e["event_id"] for e in events}) == 3000
    for chunk in chunks:
        times = [parse_ts_us(e["ts"]) for e in chunk]
        assert times == sorted(times)
    validator = EventValidator(max_past_s=1e10, max_future_s=1e10)
    rejected = [r for e in events if not isinstance(r := validator.validate(e, now_us=0), dict)]
    assert rejected == []


def test_messages_pack_one_event_or_arrays_grouped_by_queue() -> None:
    events = [
        {"type": "call.offered", "queue": "a"},
        {"type": "agent.state", "agent_id": "x"},
        {"type": "call.offered", "queue": "a"},
        {"type": "call.offered", "queue": "b"},
    ]
    assert [key for key, _ in single_messages(events)] == [b"a", b"x", b"a", b"b"]
    batched = list(batched_messages(events, per_message=2))
    assert [(key, len(batch)) for key, batch in batched] == [(b"a", 2), (None, 1), (b"b", 1)]
    assert producer_key({"type": "kb.article_viewed"}) is None
