"""Prometheus exposition: a collector that reads the view at scrape time (no hot-path gauges)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from api import clock as api_clock
from api.readmodel import ReadModel
from api.views import ModelReader
from stream.kpi.accumulator import WaitStats
from stream.kpi.windows import WINDOWS, live_end_us

# Wait-histogram bucket bounds (seconds); each queue's own threshold is added to these.
WAIT_BUCKETS_S = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)

# KPI object field -> (gauge name, help): the catalogue's figures a dashboard plots, per queue
# and window. Counts of a window are gauges too (they fall when the window rolls on).
CATALOGUE_GAUGES = {
    "answer_rate": ("callpulse_answer_rate_ratio", "Answered / (answered + abandoned + exited)"),
    "transfer_rate": ("callpulse_transfer_rate_ratio", "Transferred / answered"),
    "avg_wait_s": ("callpulse_avg_wait_seconds", "Average wait of answered and abandoned calls"),
    "avg_talk_s": ("callpulse_avg_talk_seconds", "Average talk time per ended call"),
    "avg_hold_s": ("callpulse_avg_hold_seconds", "Average hold time per ended call"),
    "avg_acw_s": ("callpulse_avg_acw_seconds", "Average after-call work per wrap-up"),
    "occupancy": ("callpulse_occupancy_ratio", "Talk, hold and ACW time / staffed time"),
    "fcr_rate": ("callpulse_fcr_ratio", "Resolutions on first contact / resolutions"),
    "repeat_rate": ("callpulse_repeat_caller_ratio", "Answered calls from repeat callers"),
    "contacts_per_resolution": (
        "callpulse_contacts_per_resolution",
        "Contacts it took to resolve (tickets, else callers)",
    ),
    "avg_time_to_resolve_s": ("callpulse_time_to_resolve_seconds", "Ticket open to resolved"),
    "avg_first_response_s": ("callpulse_first_response_seconds", "Ticket open to first response"),
    "tickets_resolved": ("callpulse_tickets_resolved", "Tickets resolved in the window"),
    "csat": ("callpulse_csat_ratio", "Top-two-box CSAT responses / responses"),
    "nps": ("callpulse_nps_score", "Net promoter score (-100..100)"),
    "ces": ("callpulse_ces_score", "Mean customer effort score"),
    "esat": ("callpulse_esat_score", "Mean agent satisfaction score"),
    "retention_rate": ("callpulse_customer_retention_percent", "Customer retention rate"),
    "kb_reads": ("callpulse_kb_reads", "Self-service article views in the window"),
    "avg_kb_read_s": ("callpulse_kb_read_seconds", "Mean article read time"),
    "kb_reads_per_call": ("callpulse_kb_reads_per_call_ratio", "Article views / offered calls"),
    "required_agents": ("callpulse_required_agents", "Erlang C agents needed for the target"),
    "predicted_service_level": (
        "callpulse_predicted_service_level_ratio",
        "Erlang C service level with the agents staffed now",
    ),
    "expected_wait_s": (
        "callpulse_expected_wait_seconds",
        "Erlang A (C without abandons) expected wait of a new caller",
    ),
}


class KpiCollector(Collector):
    def __init__(
        self,
        model: ReadModel,
        reader: ModelReader,
        lag: Callable[[], dict[tuple[str, int], int]],
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.model, self.reader, self.lag = model, reader, lag
        # Looked up at each scrape, so a frozen api.clock (tests) freezes the gauges too.
        self.clock = clock or (lambda: api_clock.now_us())

    def collect(self) -> Iterator[Metric]:
        now_us = self.clock()
        yield from self._counters()
        yield self._wait_histogram()
        yield from self._window_gauges(live_end_us(now_us))
        yield from self._live_gauges(now_us)
        yield from self._queue_targets()
        yield from self._pipeline()

    def _counters(self) -> Iterator[Metric]:
        names = {
            "offered": "Calls offered to the queue",
            "answered": "Calls answered by an agent",
            "abandoned": "Callers who hung up while waiting",
        }
        for field, help_text in names.items():
            family = CounterMetricFamily(f"callpulse_calls_{field}", help_text, labels=["queue"])
            for queue, view in sorted(self.model.queues.items()):
                family.add_metric([queue], getattr(view.totals, field))
            yield family

    def _wait_histogram(self) -> Metric:
        family = HistogramMetricFamily(
            "callpulse_wait_seconds",
            "Time callers waited in queue, by outcome",
            labels=["queue", "outcome"],
        )
        for queue, view in sorted(self.model.queues.items()):
            threshold = self.reader.centre.for_queue(queue).threshold_s
            bounds = sorted({*WAIT_BUCKETS_S, threshold})
            for outcome, stats in (
                ("answered", view.totals.answered_waits),
                ("abandoned", view.totals.abandoned_waits),
            ):
                family.add_metric([queue, outcome], _cumulative(stats, bounds), stats.sum_s)
        return family

    def _window_gauges(self, now_us: int) -> Iterator[Metric]:
        gauges = {
            "service_level": GaugeMetricFamily(
                "callpulse_service_level_ratio",
                "Service level over the window",
                labels=["queue", "window"],
            ),
            "abandon_rate": GaugeMetricFamily(
                "callpulse_abandon_rate_ratio",
                "Abandoned / (answered + abandoned + exited)",
                labels=["queue", "window"],
            ),
            "asa_s": GaugeMetricFamily(
                "callpulse_asa_seconds", "Average speed of answer", labels=["queue", "window"]
            ),
            "aht_s": GaugeMetricFamily(
                "callpulse_aht_seconds", "Average handle time", labels=["queue", "window"]
            ),
        }
        for field, (name, help_text) in CATALOGUE_GAUGES.items():
            gauges[field] = GaugeMetricFamily(name, help_text, labels=["queue", "window"])
        servqual = GaugeMetricFamily(
            "callpulse_servqual_gap",
            "SERVQUAL mean perception - mean expectation",
            labels=["queue", "window", "dimension"],
        )
        by_channel = GaugeMetricFamily(
            "callpulse_first_response_by_channel_seconds",
            "Ticket first response time by channel",
            labels=["queue", "window", "channel"],
        )
        for queue in self.reader.queue_names():
            for window in WINDOWS:
                kpis = self.reader.queue_kpis(queue, window, now_us)
                for field, family in gauges.items():
                    if kpis[field] is not None:  # an empty window has no value, not 0
                        family.add_metric([queue, window], kpis[field])
                _keyed(servqual, [queue, window], kpis["servqual"])
                _keyed(by_channel, [queue, window], kpis["first_response_by_channel"])
        yield from (*gauges.values(), servqual, by_channel)

    def _live_gauges(self, now_us: int) -> Iterator[Metric]:
        waiting = GaugeMetricFamily(
            "callpulse_calls_waiting", "Calls waiting now", labels=["queue"]
        )
        longest = GaugeMetricFamily(
            "callpulse_longest_wait_seconds", "Age of the oldest waiting call", labels=["queue"]
        )
        agents = GaugeMetricFamily("callpulse_agents", "Agents by state", labels=["queue", "state"])
        for queue in self.reader.queue_names():
            now = self.reader.waiting(queue, now_us + 1)
            waiting.add_metric([queue], now.calls_waiting)
            longest.add_metric([queue], now.longest_wait_s or 0.0)
            for state, count in self.reader.agent_states(queue, now_us + 1).items():
                agents.add_metric([queue, state], count)
        yield from (waiting, longest, agents)

    def _queue_targets(self) -> Iterator[Metric]:
        """Each queue's configured service-level target and threshold: alert rules and
        dashboards compare with the queue's own target instead of a copy of it."""
        target = GaugeMetricFamily(
            "callpulse_service_level_target_ratio",
            "Service-level target of the queue (queues config)",
            labels=["queue"],
        )
        threshold = GaugeMetricFamily(
            "callpulse_service_level_threshold_seconds",
            "Answer-within threshold of the queue's service level (queues config)",
            labels=["queue"],
        )
        for queue in self.reader.queue_names():
            config = self.reader.centre.for_queue(queue)
            target.add_metric([queue], config.target)
            threshold.add_metric([queue], config.threshold_s)
        yield from (target, threshold)

    def _pipeline(self) -> Iterator[Metric]:
        processed = CounterMetricFamily(
            "callpulse_events_processed", "Valid events processed by the workers", labels=["type"]
        )
        by_type: dict[str, int] = {}
        duplicates = 0
        for totals in self.model.routing.values():
            duplicates += totals.duplicates
            for kind, count in totals.events.items():
                by_type[kind] = by_type.get(kind, 0) + count
        for kind, count in sorted(by_type.items()):
            processed.add_metric([kind], count)
        yield processed
        yield CounterMetricFamily(
            "callpulse_events_duplicate", "Events seen again and counted once", value=duplicates
        )
        invalid = CounterMetricFamily(
            "callpulse_events_invalid", "Events refused to the dead-letter topic", labels=["reason"]
        )
        for reason, count in sorted(self.model.invalid_by_reason.items()):
            invalid.add_metric([reason], count)
        yield invalid
        lag = GaugeMetricFamily(
            "callpulse_consumer_lag", "Messages not yet processed", labels=["topic", "partition"]
        )
        for (topic, partition), value in sorted(self.lag().items()):
            lag.add_metric([topic, str(partition)], value)
        yield lag


def _keyed(family: GaugeMetricFamily, labels: list[str], values: dict[str, float | None]) -> None:
    for key, value in sorted(values.items()):
        if value is not None:
            family.add_metric([*labels, key], value)


def _cumulative(stats: WaitStats, bounds: list[int]) -> list[tuple[str, float]]:
    buckets = [(str(float(bound)), float(stats.at_most(bound))) for bound in bounds]
    buckets.append(("+Inf", float(stats.count)))
    return buckets
