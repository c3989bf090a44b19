"""The callpulse Grafana dashboard as code (grafana-foundation-sdk): dashboards/callpulse.json.

    python deploy/grafana/dashboard.py           # regenerate the JSON after editing this file
    python deploy/grafana/dashboard.py --check   # exit 1 if the JSON is not what this file makes

Edit this file, never the JSON: tests/unit/test_grafana_dashboard.py fails when they disagree,
and tests/integration/test_grafana_queries.py runs every panel's query against a real Prometheus
scraping a real callpulse. Metric names: CONTRACT.md and api/metrics.py.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "callpulse.json"
UID = "callpulse-overview"
DATASOURCE_UID = "callpulse-prometheus"  # provisioning/datasources/prometheus.yml
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Panels of rates use Grafana's own interval (at least four scrapes); the query test uses 1m.
RATE = "$__rate_interval"
Q = 'queue=~"$queue"'  # every per-queue selector; `All` is the regex .*
# Every API replica holds the whole view and exports the same series: queries take the max
# across replicas (a replica still catching up shows less, never more), never their sum.
QW = f'{Q}, window="$window"'
DEFAULT_TARGET = 0.8  # the service-level target line when a queue has no configured target
GREEN, AMBER, RED, BLUE = "green", "#EAB839", "red", "blue"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


# --- building blocks --------------------------------------------------------------------------


def steps(*pairs: tuple[float | None, str]) -> dash.ThresholdsConfig:
    """Colour steps; the first value is None (from minus infinity)."""
    return (
        dash.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in pairs])
    )


def targets(queries: list[Query]) -> list[Builder[variants.Dataquery]]:
    return [
        prometheus.Dataquery()
        .expr(query.expr)
        .legend_format(query.legend)
        .ref_id(chr(ord("A") + index))
        .datasource(DATASOURCE)
        for index, query in enumerate(queries)
    ]


def stat_panel(
    title: str, description: str, query: Query, unit: str, thresholds: dash.ThresholdsConfig
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets([query]))
        .unit(unit)
        .thresholds(thresholds)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .height(5)
        .span(4)
    )


def series_panel(
    title: str, description: str, queries: list[Query], unit: str, span: int = 12
) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets(queries))
        .unit(unit)
        .line_width(2)
        .fill_opacity(10)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.RIGHT)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .height(8)
        .span(span)
    )


# --- the panels, row by row -------------------------------------------------------------------


Row = tuple[str, list[stat.Panel | timeseries.Panel]]


def overview_row() -> Row:
    return "Queues now", [
        stat_panel(
            "Calls waiting",
            "Calls in queue now, per queue.",
            Query(f"max by (queue) (callpulse_calls_waiting{{{Q}}})", "{{queue}}"),
            "short",
            steps((None, GREEN), (3, AMBER), (10, RED)),
        ),
        stat_panel(
            "Longest wait",
            "Age of the oldest waiting call. Amber past the default 20 s threshold, red past 40 s.",
            Query(f"max by (queue) (callpulse_longest_wait_seconds{{{Q}}})", "{{queue}}"),
            "s",
            steps((None, GREEN), (20, AMBER), (40, RED)),
        ),
        stat_panel(
            "Service level ($window)",
            "Share of calls answered within the queue's threshold over the window.",
            Query(f"max by (queue) (callpulse_service_level_ratio{{{QW}}})", "{{queue}}"),
            "percentunit",
            steps((None, RED), (DEFAULT_TARGET - 0.1, AMBER), (DEFAULT_TARGET, GREEN)),
        ),
        stat_panel(
            "Abandoned ($window)",
            "Abandoned / (answered + abandoned + exited) over the window.",
            Query(f"max by (queue) (callpulse_abandon_rate_ratio{{{QW}}})", "{{queue}}"),
            "percentunit",
            steps((None, GREEN), (0.05, AMBER), (0.1, RED)),
        ),
        stat_panel(
            "ASA ($window)",
            "Average speed of answer over the window.",
            Query(f"max by (queue) (callpulse_asa_seconds{{{QW}}})", "{{queue}}"),
            "s",
            steps((None, GREEN), (10, AMBER), (20, RED)),
        ),
        stat_panel(
            "Agents available",
            "Agents in the `available` state now, per queue they serve.",
            Query(f'max by (queue) (callpulse_agents{{{Q}, state="available"}})', "{{queue}}"),
            "short",
            steps((None, RED), (1, GREEN)),
        ),
    ]


def service_level_row() -> Row:
    service_level = series_panel(
        "Service level against target ($window window)",
        f"Rolling service level per queue against each queue's own target (the 'target' "
        f"series, from the queues file); the dashed line is the {DEFAULT_TARGET:.0%} default.",
        [
            Query(f"max by (queue) (callpulse_service_level_ratio{{{QW}}})", "{{queue}}"),
            Query(
                f"max by (queue) (callpulse_service_level_target_ratio{{{Q}}})",
                "{{queue}} target",
            ),
        ],
        "percentunit",
    )
    # The target as a dashed threshold line; below it the area is tinted red.
    service_level.min(0).max(1).thresholds(steps((None, RED), (DEFAULT_TARGET, GREEN)))
    service_level.thresholds_style(
        common_builders.GraphThresholdsStyleConfig().mode(
            common.GraphThresholdsStyleMode.DASHED_AND_AREA
        )
    )
    abandonment = series_panel(
        "Abandonment rate ($window window)",
        "Rolling abandonment per queue: abandoned / (answered + abandoned + exited).",
        [Query(f"max by (queue) (callpulse_abandon_rate_ratio{{{QW}}})", "{{queue}}")],
        "percentunit",
    )
    return "Service level and abandonment", [service_level, abandonment]


def wait_quantiles(outcome: str) -> list[Query]:
    return [
        Query(
            f"histogram_quantile({q}, max by (queue, le) "
            f'(rate(callpulse_wait_seconds_bucket{{{Q}, outcome="{outcome}"}}[{RATE}])))',
            f"{{{{queue}}}} p{round(q * 100)}",
        )
        for q in (0.5, 0.9)
    ]


def traffic_row() -> Row:
    per_minute = [
        Query(
            f"max by (queue) (rate(callpulse_calls_{kind}_total{{{Q}}}[{RATE}])) * 60",
            f"{{{{queue}}}} {kind}",
        )
        for kind in ("offered", "answered", "abandoned")
    ]
    return "Traffic and waits", [
        series_panel(
            "Calls per minute",
            "Offered, answered and abandoned calls per minute, from the counters.",
            per_minute,
            "short",
        ),
        series_panel(
            "Wait before answer (quantiles)",
            "Median and 90th percentile wait of answered calls, from the wait histogram.",
            wait_quantiles("answered"),
            "s",
        ),
        series_panel(
            "Longest wait and ASA",
            "Age of the oldest waiting call now, and the average speed of answer over the window.",
            [
                Query(
                    f"max by (queue) (callpulse_longest_wait_seconds{{{Q}}})",
                    "{{queue}} longest wait",
                ),
                Query(f"max by (queue) (callpulse_asa_seconds{{{QW}}})", "{{queue}} ASA"),
            ],
            "s",
        ),
        series_panel(
            "Abandoned callers' wait (quantiles)",
            "How long callers waited before hanging up: median and 90th percentile.",
            wait_quantiles("abandoned"),
            "s",
        ),
    ]


def agents_row() -> Row:
    by_state = series_panel(
        "Agents by state",
        "Agents per state in the chosen queues (an agent serving two queues counts in both).",
        [
            Query(
                f"sum by (state) (max by (queue, state) "
                f'(callpulse_agents{{{Q}, state=~"available|on_call|acw|paused"}}))',
                "{{state}}",
            )
        ],
        "short",
    )
    by_state.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    return "Agents", [
        by_state,
        series_panel(
            "Calls waiting and agents available",
            "Calls waiting against agents free to take them, per queue.",
            [
                Query(f"max by (queue) (callpulse_calls_waiting{{{Q}}})", "{{queue}} waiting"),
                Query(
                    f'max by (queue) (callpulse_agents{{{Q}, state="available"}})',
                    "{{queue}} available",
                ),
            ],
            "short",
        ),
    ]


def pipeline_row() -> Row:
    return "Pipeline health", [
        series_panel(
            "Events processed per second",
            "Valid events the workers processed, by type, and events seen again (counted once).",
            [
                Query(
                    f"max by (type) (rate(callpulse_events_processed_total[{RATE}]))", "{{type}}"
                ),
                Query(f"max(rate(callpulse_events_duplicate_total[{RATE}]))", "duplicates"),
            ],
            "ops",
            span=8,
        ),
        series_panel(
            "Invalid events per second",
            "Events refused to the dead-letter topic, by reason.",
            [
                Query(
                    f"max by (reason) (rate(callpulse_events_invalid_total[{RATE}]))", "{{reason}}"
                )
            ],
            "ops",
            span=8,
        ),
        series_panel(
            "Consumer lag and API targets",
            "Messages the workers have not processed yet, per topic (sum of partitions), and "
            "how many API replicas Prometheus scrapes.",
            [
                Query(
                    "sum by (topic) (max by (topic, partition) (callpulse_consumer_lag))",
                    "{{topic}}",
                ),
                Query('sum(up{job=~"callpulse.*"})', "API targets up"),
            ],
            "short",
            span=8,
        ),
    ]


def alerts_row() -> Row:
    return "Alerts", [
        series_panel(
            "In-service alerts firing",
            "Rules of the in-service alert engine firing now, per queue (docs/ALERTS.md).",
            [
                Query(
                    f"sum by (queue) (max by (queue, rule) (callpulse_alerts_firing{{{Q}}}))",
                    "{{queue}}",
                )
            ],
            "short",
        ),
        series_panel(
            "Alert transitions per minute",
            "Pending, firing, resolved and cancelled transitions of the in-service engine.",
            [
                Query(
                    f"max by (status) (rate(callpulse_alert_transitions_total[{RATE}])) * 60",
                    "{{status}}",
                )
            ],
            "short",
        ),
    ]


# --- the dashboard ----------------------------------------------------------------------------


def variables() -> list[dash.DatasourceVariable | dash.QueryVariable | dash.CustomVariable]:
    return [
        dash.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(VariableOption(selected=True, text="Prometheus", value=DATASOURCE_UID)),
        dash.QueryVariable("queue")
        .label("Queue")
        .datasource(DATASOURCE)
        .query("label_values(callpulse_calls_offered_total, queue)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(VariableOption(selected=True, text="All", value="$__all")),
        dash.CustomVariable("window")
        .label("KPI window")
        .values("5m,15m,30m,1h,today")
        .current(VariableOption(selected=True, text="15m", value="15m")),
    ]


def build() -> dict[str, object]:
    board = (
        dash.Dashboard("callpulse: contact-centre KPIs")
        .uid(UID)
        .description("Service level, abandonment, waits, agents and pipeline health per queue.")
        .tags(["callpulse", "contact-centre"])
        .refresh("10s")
        .time("now-1h", "now")
        .timezone("browser")
        .editable()
    )
    for variable in variables():
        board.with_variable(variable)
    # Expanded rows: the row, then its panels at top level (nested panels are for collapsed rows).
    for title, panels in (
        overview_row(),
        service_level_row(),
        traffic_row(),
        agents_row(),
        alerts_row(),
        pipeline_row(),
    ):
        board.with_row(dash.Row(title))
        for panel in panels:
            board.with_panel(panel)
    model = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    _number_panels(model)
    return dict(model)


def _number_panels(model: dict[str, object]) -> None:
    """Stable panel ids (Grafana would invent them on load, and links need them)."""
    panels = model.get("panels")
    assert isinstance(panels, list)
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            sys.stderr.write(f"{OUTPUT} is stale: run python {Path(__file__).name}\n")
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
