"""Alert state on ``/metrics``, read at scrape time like every other callpulse figure."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.alerts.service import AlertService


class AlertCollector(Collector):
    def __init__(self, service: AlertService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        firing = GaugeMetricFamily(
            "callpulse_alerts_firing",
            "1 while the in-service alert fires, 0 otherwise (every rule evaluated so far)",
            labels=["queue", "rule"],
        )
        for queue, rule, is_firing in self.service.engine.firing():
            firing.add_metric([queue, rule], 1.0 if is_firing else 0.0)
        yield firing
        transitions = CounterMetricFamily(
            "callpulse_alert_transitions",
            "Alert state changes: pending, firing, resolved, cancelled",
            labels=["status"],
        )
        for status, count in sorted(self.service.transitions_by_status.items()):
            transitions.add_metric([status], count)
        yield transitions
        deliveries = CounterMetricFamily(
            "callpulse_alert_deliveries",
            "Alert transitions per channel: delivered, retried, dead_lettered",
            labels=["channel", "outcome"],
        )
        notifier = self.service.notifier
        for (channel, outcome), count in sorted(notifier.counts.items() if notifier else ()):
            deliveries.add_metric([channel, outcome], count)
        yield deliveries
